#!/usr/bin/env python
"""Single-person crop annotations (``PoseCrops``, for CPM) from a COCO person-keypoint file: one entry
per person with at least ``--min-keypoints`` labelled keypoints (crowds left out), centred on the
union of its box and labelled keypoints, scale = the longer side / 200.

    python datasets/coco2crops.py ANN_FILE OUT_JSON [--min-keypoints 8]

Images are named by their COCO ``file_name``, so ``img_dir`` stays the COCO image folder.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import List, Optional, Sequence


def crop_entry(image: str, keypoints: Sequence[float], bbox: Optional[Sequence[float]] = None,
               head_box: Optional[Sequence[float]] = None) -> dict:
    """One crop: ``keypoints`` COCO-style flat [x, y, v] * K; ``bbox`` [x, y, w, h] (optional)."""
    joints = [[float(keypoints[i]), float(keypoints[i + 1]), int(keypoints[i + 2])] for i in range(0, len(keypoints), 3)]
    xs = [j[0] for j in joints if j[2] > 0]
    ys = [j[1] for j in joints if j[2] > 0]
    if bbox is not None:
        xs += [bbox[0], bbox[0] + bbox[2]]
        ys += [bbox[1], bbox[1] + bbox[3]]
    if not xs:
        raise ValueError(f"{image}: a crop needs labelled keypoints or a box")
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    entry = {"image": image, "center": [round((x0 + x1) / 2, 2), round((y0 + y1) / 2, 2)],
             "scale": round(max(x1 - x0, y1 - y0, 1.0) / 200, 4), "joints": joints,
             "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]}
    if head_box is not None:
        entry["head_box"] = [round(float(v), 2) for v in head_box]
    return entry


def coco_to_crops(coco: dict, min_keypoints: int = 8) -> dict:
    files = {img["id"]: img["file_name"] for img in coco["images"]}
    cat = next((c for c in coco["categories"] if c.get("keypoints")), None)
    if cat is None:
        raise ValueError("no category lists 'keypoints': not a COCO person-keypoint file")
    entries: List[dict] = []
    for a in coco["annotations"]:
        kp = a.get("keypoints") or []
        if a.get("iscrowd", 0) or sum(1 for v in kp[2::3] if v > 0) < min_keypoints:
            continue
        entries.append(crop_entry(files[a["image_id"]], kp, a.get("bbox")))
    return {"keypoints": cat["keypoints"], "skeleton": [[i - 1, j - 1] for i, j in cat.get("skeleton", [])],
            "annotations": entries}


def write_json(data: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ann_file")
    ap.add_argument("out_json")
    ap.add_argument("--min-keypoints", type=int, default=8)
    a = ap.parse_args()
    with open(a.ann_file) as f:
        data = coco_to_crops(json.load(f), a.min_keypoints)
    write_json(data, a.out_json)
    print(f"wrote {len(data['annotations'])} crops to {a.out_json}")


if __name__ == "__main__":
    main()
