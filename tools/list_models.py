#!/usr/bin/env python
"""List registered parts: python tools/list_models.py [models|backbones|datasets|transforms|...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torchcv.cli import list_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(list_main())
