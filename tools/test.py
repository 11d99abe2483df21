#!/usr/bin/env python
"""python tools/test.py --help"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torchcv.cli import test_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_main())
