#!/usr/bin/env python
"""Convert a Pascal VOC detection split to a COCO instances JSON (boxes only).

    python datasets/voc2coco.py VOCdevkit/VOC2007 --split trainval --out data/voc07_trainval.json

Then train with CocoDetection (img_dir: VOCdevkit/VOC2007/JPEGImages, with_masks: false).
Category ids are 1..20 in the usual VOC order; ``difficult`` objects become iscrowd=1 so COCO
evaluation ignores them, as VOC evaluation does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from torchcv.data.datasets.voc import VOC_CLASSES, parse_voc_xml  # noqa: E402


def convert(root: str, split: str, classes=VOC_CLASSES) -> dict:
    with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt")) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    index = {c: i + 1 for i, c in enumerate(classes)}
    images, anns = [], []
    for n, img_id in enumerate(ids, 1):
        fname, w, h, objs = parse_voc_xml(os.path.join(root, "Annotations", f"{img_id}.xml"))
        images.append({"id": n, "file_name": fname or f"{img_id}.jpg", "width": w, "height": h})
        for o in objs:
            if o["name"] not in index:
                raise ValueError(f"{img_id}: unknown class {o['name']}")
            x0, y0, x1, y1 = o["box"]
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": index[o["name"]],
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                         "iscrowd": int(o["difficult"]), "segmentation": []})
    return {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": c, "supercategory": "voc"} for i, c in enumerate(classes)]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="e.g. VOCdevkit/VOC2007")
    ap.add_argument("--split", default="trainval")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    data = convert(a.root, a.split)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(data, f)
    print(f"{len(data['images'])} images, {len(data['annotations'])} boxes -> {a.out}")


if __name__ == "__main__":
    main()
