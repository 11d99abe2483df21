#!/usr/bin/env python
"""MPII Human Pose (multi-person) as a COCO person-keypoint file, for bottom-up models (OpenPose):
the people of each image become that image's annotations.

    python datasets/mpii2coco.py ANN_JSON IMG_DIR OUT_JSON

ANN_JSON: single-person entries, either ``PoseCrops`` JSON ({"keypoints", "annotations": [{image,
center, scale, joints [[x, y, v]], head_box}]}) or the common MPII list ([{image, center, scale,
joints [[x, y]], joints_vis}]; MPII's 16 joint names). Each person's box is the extent of its labelled
joints and head box (MPII has no outlines: ``area`` = the box's area, which sets the OKS scale);
image sizes are read from the files' headers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torchcv.data.datasets.pose_crops import MPII_KEYPOINT_NAMES, MPII_SKELETON  # noqa: E402


def _joints(e: dict) -> List[List[float]]:
    if "joints_vis" in e:
        return [[float(j[0]), float(j[1]), 2 if v else 0] for j, v in zip(e["joints"], e["joints_vis"])]
    return [[float(j[0]), float(j[1]), int(j[2])] for j in e["joints"]]


def mpii_to_coco(data, img_dir: str) -> dict:
    from PIL import Image
    entries = data["annotations"] if isinstance(data, dict) else data
    names = data.get("keypoints", MPII_KEYPOINT_NAMES) if isinstance(data, dict) else MPII_KEYPOINT_NAMES
    skeleton = data.get("skeleton", MPII_SKELETON) if isinstance(data, dict) else MPII_SKELETON
    images, anns, ids = [], [], {}
    for e in entries:
        if e["image"] not in ids:
            with Image.open(os.path.join(img_dir, e["image"])) as im:
                w, h = im.size
            ids[e["image"]] = len(images) + 1
            images.append({"id": ids[e["image"]], "file_name": e["image"], "width": w, "height": h})
        joints = _joints(e)
        pts = [(x, y) for x, y, v in joints if v > 0]
        if e.get("head_box"):
            x1, y1, x2, y2 = e["head_box"]
            pts += [(x1, y1), (x2, y2)]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        anns.append({"id": len(anns) + 1, "image_id": ids[e["image"]], "category_id": 1, "iscrowd": 0,
                     "bbox": [round(v, 2) for v in box], "area": round(box[2] * box[3], 2),
                     "keypoints": [round(v, 2) if i % 3 < 2 else int(v) for i, v in
                                   enumerate(x for j in joints for x in j)],
                     "num_keypoints": sum(1 for j in joints if j[2] > 0)})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(names),
                            "skeleton": [[a + 1, b + 1] for a, b in skeleton]}]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ann_json")
    ap.add_argument("img_dir")
    ap.add_argument("out_json")
    a = ap.parse_args()
    with open(a.ann_json) as f:
        out = mpii_to_coco(json.load(f), a.img_dir)
    os.makedirs(os.path.dirname(os.path.abspath(a.out_json)), exist_ok=True)
    with open(a.out_json + ".tmp", "w") as f:
        json.dump(out, f)
    os.replace(a.out_json + ".tmp", a.out_json)
    print(f"wrote {len(out['annotations'])} people in {len(out['images'])} images to {a.out_json}")


if __name__ == "__main__":
    main()
