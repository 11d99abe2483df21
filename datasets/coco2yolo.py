#!/usr/bin/env python
"""Convert COCO-format detection data (e.g. the built-in shapes_det) to the YOLO layout.

    python datasets/coco2yolo.py --img-dir data/shapes_det/train \
        --ann-file data/shapes_det/annotations/instances_train.json --out data/shapes_det_yolo --split train

Writes OUT/images/SPLIT/<file> (a hard link, or a copy across file systems),
OUT/labels/SPLIT/<name>.txt with one ``class x_center y_center width height`` line per object
(class: 0-based index in sorted category-id order; coordinates normalised by the image size;
crowd annotations left out), an empty label file for an image without objects, and
OUT/classes.names (one name per line).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil


def convert(img_dir: str, ann_file: str, out: str, split: str) -> int:
    with open(ann_file, "r", encoding="utf-8") as f:
        data = json.load(f)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    by_image = {}
    for a in data["annotations"]:
        if not a.get("iscrowd", 0):
            by_image.setdefault(a["image_id"], []).append(a)
    img_out = os.path.join(out, "images", split)
    lab_out = os.path.join(out, "labels", split)
    os.makedirs(img_out, exist_ok=True)
    os.makedirs(lab_out, exist_ok=True)
    for img in data["images"]:
        src = os.path.join(img_dir, img["file_name"])
        dst = os.path.join(img_out, os.path.basename(img["file_name"]))
        if not os.path.exists(dst):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        w, h = float(img["width"]), float(img["height"])
        lines = []
        for a in by_image.get(img["id"], []):
            x, y, bw, bh = a["bbox"]
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(w, x + bw), min(h, y + bh)
            if x1 <= x0 or y1 <= y0:
                continue
            lines.append(f"{index[a['category_id']]} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                         f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
        name = os.path.splitext(os.path.basename(img["file_name"]))[0] + ".txt"
        with open(os.path.join(lab_out, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
    with open(os.path.join(out, "classes.names"), "w", encoding="utf-8") as f:
        f.write("\n".join(c["name"] for c in cats) + "\n")
    return len(data["images"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--img-dir", required=True)
    ap.add_argument("--ann-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="train")
    a = ap.parse_args(argv)
    n = convert(a.img_dir, a.ann_file, a.out, a.split)
    print(f"{a.split}: {n} images -> {a.out}/images/{a.split}, labels in {a.out}/labels/{a.split}")


if __name__ == "__main__":
    main()
