#!/usr/bin/env python
"""Write ``*_gtFine_labelTrainIds.png`` next to every Cityscapes ``*_gtFine_labelIds.png``.

    python datasets/cityscapes_trainids.py data/cityscapes

The 34 labelIds are mapped to the 19 evaluated trainIds (road=0 ... bicycle=18); every other id
becomes 255 (ignore). ``CityscapesSegDataset`` reads these files when present and otherwise maps
the labelIds on the fly.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torchcv.data.datasets.segmentation import cityscapes_lut  # noqa: E402


def convert(root: str) -> int:
    files = sorted(glob.glob(os.path.join(root, "gtFine", "*", "*", "*_gtFine_labelIds.png")))
    if not files:
        raise FileNotFoundError(f"no gtFine/*/*/*_gtFine_labelIds.png under {root}: is this the Cityscapes root?")
    lut = cityscapes_lut()
    for path in files:
        ids = np.array(Image.open(path))
        Image.fromarray(lut[ids]).save(path.replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"))
    return len(files)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="Cityscapes root (holds leftImg8bit/ and gtFine/)")
    n = convert(p.parse_args(argv).root)
    print(f"wrote {n} labelTrainIds files")


if __name__ == "__main__":
    main()
