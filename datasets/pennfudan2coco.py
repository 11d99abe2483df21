#!/usr/bin/env python
"""Convert PennFudanPed (PNGImages/ + PedMasks/) to COCO instances JSON with RLE masks.

    python datasets/pennfudan2coco.py data/PennFudanPed --out-dir data/PennFudanPed/annotations [--num-test 50]

Writes instances_train.json and instances_test.json (the tutorial's split: a seed-1 permutation,
the last ``num-test`` images for testing); img_dir for CocoDetection is PennFudanPed/PNGImages.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torchcv.data.datasets.pennfudan import instance_masks  # noqa: E402


def convert(root: str, num_test: int = 50):
    import torch
    from pycocotools import mask as mask_utils
    imgs = sorted(os.listdir(os.path.join(root, "PNGImages")))
    masks = sorted(os.listdir(os.path.join(root, "PedMasks")))
    perm = torch.randperm(len(imgs), generator=torch.Generator().manual_seed(1)).tolist()
    splits = {"train": perm[:-num_test], "test": perm[-num_test:]}
    out = {}
    for split, order in splits.items():
        images, anns = [], []
        for i in sorted(order):
            inst = instance_masks(os.path.join(root, "PedMasks", masks[i]))
            h, w = inst.shape[-2:]
            images.append({"id": i + 1, "file_name": imgs[i], "width": w, "height": h})
            for m in inst:
                rle = mask_utils.encode(np.asfortranarray(m))
                rle["counts"] = rle["counts"].decode("ascii")
                x, y, bw, bh = mask_utils.toBbox(rle).tolist()
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": [x, y, bw, bh],
                             "area": int(m.sum()), "iscrowd": 0, "segmentation": rle})
        out[split] = {"images": images, "annotations": anns,
                      "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--num-test", type=int, default=50)
    a = ap.parse_args(argv)
    out_dir = a.out_dir or os.path.join(a.root, "annotations")
    os.makedirs(out_dir, exist_ok=True)
    for split, data in convert(a.root, a.num_test).items():
        path = os.path.join(out_dir, f"instances_{split}.json")
        with open(path, "w") as f:
            json.dump(data, f)
        print(f"{split}: {len(data['images'])} images, {len(data['annotations'])} instances -> {path}")


if __name__ == "__main__":
    main()
