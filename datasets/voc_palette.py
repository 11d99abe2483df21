#!/usr/bin/env python
"""Convert colour (RGB) segmentation masks to VOC-style palette PNGs of class indices.

    python datasets/voc_palette.py SRC_DIR DST_DIR [--palette voc|cityscapes]

Each pixel's colour must be a palette entry (VOC colour map: class i; the border colour
(224, 224, 192) is index 255 = ignore); an unknown colour is an error naming the file and colour.
The output PNGs store indices with the palette attached, so they display in colour and read back
as class indices (what ``VOCSegDataset`` / ``SegFolderDataset`` expect).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torchcv.data.datasets.segmentation import CITYSCAPES_PALETTE, voc_palette  # noqa: E402


def _palette(name: str) -> np.ndarray:
    if name == "voc":
        return voc_palette(256)
    pal = np.zeros((256, 3), np.uint8)
    pal[: len(CITYSCAPES_PALETTE)] = CITYSCAPES_PALETTE
    pal[len(CITYSCAPES_PALETTE):] = 255  # unused entries; 255 stays white-ish ignore
    return pal


def colour_to_index(src: str, dst: str, palette: str = "voc") -> np.ndarray:
    pal = _palette(palette)
    rgb = np.array(Image.open(src).convert("RGB"))
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    table = {}
    for i in range(255, -1, -1):  # lower indices win where colours repeat
        c = pal[i]
        table[(int(c[0]) << 16) | (int(c[1]) << 8) | int(c[2])] = i
    uniq, inv = np.unique(codes, return_inverse=True)
    unknown = [u for u in uniq.tolist() if u not in table]
    if unknown:
        u = unknown[0]
        raise ValueError(f"{src}: colour {(u >> 16, (u >> 8) & 255, u & 255)} is not in the {palette} palette")
    idx = np.array([table[u] for u in uniq.tolist()], np.uint8)[inv].reshape(codes.shape)
    out = Image.fromarray(idx, mode="P")
    out.putpalette(pal.reshape(-1).tolist())
    out.save(dst)
    return idx


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--palette", default="voc", choices=["voc", "cityscapes"])
    a = p.parse_args(argv)
    os.makedirs(a.dst, exist_ok=True)
    files = sorted(glob.glob(os.path.join(a.src, "*.png")))
    for f in files:
        colour_to_index(f, os.path.join(a.dst, os.path.basename(f)), a.palette)
    print(f"converted {len(files)} masks to {a.dst}")


if __name__ == "__main__":
    main()
