#!/usr/bin/env python
"""Write the built-in instance dataset "shapes_det" in COCO format (offline, deterministic by seed).

    python datasets/generate_shapes_det.py [--out data/shapes_det] [--train 600] [--val 100] [--seed 0]

Layout: OUT/train/*.png, OUT/val/*.png, OUT/annotations/instances_{train,val}.json.
Each image (about 256 px, three aspect ratios) has a textured background with clutter (lines,
dots and blobs that are not objects) and 2-5 objects of four classes (circle, square, triangle,
cross) in random colours, sizes 24-96 px, possibly overlapping: later objects occlude earlier
ones, masks and boxes describe the visible part, and objects less than 40% visible are dropped.
Annotations carry polygon segmentation (a few as RLE), area, iscrowd=0 and five keypoints per
object (centre, top, right, bottom, left extreme points of the full shape; v=2 visible, v=1
occluded) for the keypoint task.
"""
from __future__ import annotations

import argparse
import json
import os

import cv2
import numpy as np

CLASSES = ["circle", "square", "triangle", "cross"]
KEYPOINTS = ["center", "top", "right", "bottom", "left"]
SIZES = [(256, 256), (288, 224), (224, 288)]  # (width, height)


def _background(rng, w, h):
    base = rng.uniform(20, 110, size=3)
    gx = np.linspace(0, 1, w)[None, :, None] * rng.uniform(-40, 40, size=3)
    gy = np.linspace(0, 1, h)[:, None, None] * rng.uniform(-40, 40, size=3)
    img = base + gx + gy + rng.normal(0, 6, size=(h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 9)):  # clutter: thin lines
        p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
        p2 = tuple(int(v) for v in rng.integers(0, [w, h]))
        cv2.line(img, p1, p2, tuple(int(c) for c in rng.uniform(40, 200, 3)), int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(rng.integers(5, 20)):  # clutter: small dots and blobs
        c = tuple(int(v) for v in rng.integers(0, [w, h]))
        cv2.circle(img, c, int(rng.integers(1, 6)), tuple(int(v) for v in rng.uniform(40, 200, 3)), -1, cv2.LINE_AA)
    return img


def _shape_mask(rng, cls, w, h):
    """Full (unoccluded) mask of one object and its five keypoints."""
    size = rng.uniform(24, 96)
    cx, cy = rng.uniform(size * 0.3, w - size * 0.3), rng.uniform(size * 0.3, h - size * 0.3)
    m = np.zeros((h, w), np.uint8)
    r = size / 2
    if cls == "circle":
        cv2.circle(m, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
    else:
        ang = rng.uniform(0, 2 * np.pi)
        if cls == "square":
            pts = [(np.cos(ang + k * np.pi / 2) * r * 1.2, np.sin(ang + k * np.pi / 2) * r * 1.2) for k in range(4)]
        elif cls == "triangle":
            pts = [(np.cos(ang + k * 2 * np.pi / 3) * r * 1.2, np.sin(ang + k * 2 * np.pi / 3) * r * 1.2)
                   for k in range(3)]
        else:  # cross: twelve corners of a plus sign, arm width 0.4 * size
            a, b = r, r * 0.4
            base = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b),
                    (-a, -b), (-b, -b)]
            c, s = np.cos(ang), np.sin(ang)
            pts = [(x * c - y * s, x * s + y * c) for x, y in base]
        poly = np.array([[cx + x, cy + y] for x, y in pts], np.float64)
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return m, None
    kps = [(cx, cy), (xs[ys.argmin()], ys.min()), (xs.max(), ys[xs.argmax()]), (xs[ys.argmax()], ys.max()),
           (xs.min(), ys[xs.argmin()])]
    return m, [(float(x), float(y)) for x, y in kps]


def _polygons(mask):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _rle(mask):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def make_split(out_dir, split, n, seed, start_ann_id=1):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_dir, split), exist_ok=True)
    images, anns = [], []
    ann_id = start_ann_id
    for i in range(n):
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        img = _background(rng, w, h)
        objs = []
        for _ in range(int(rng.integers(2, 6))):
            cls = int(rng.integers(len(CLASSES)))
            m, kps = _shape_mask(rng, CLASSES[cls], w, h)
            if kps is None:
                continue
            color = rng.uniform(120, 255, 3)
            color[rng.integers(3)] *= rng.uniform(0.2, 0.6)  # saturated, bright against the dark background
            shade = rng.normal(0, 8, size=(h, w, 1)) + np.linspace(-15, 15, w)[None, :, None]
            painted = np.clip(color[None, None, :] + shade, 0, 255).astype(np.uint8)
            img[m > 0] = painted[m > 0]
            for o in objs:  # the new object occludes the earlier ones
                o["visible"][m > 0] = 0
            objs.append({"cls": cls, "full": m, "visible": m.copy(), "kps": kps})
        file_name = f"{i:05d}.png"
        cv2.imwrite(os.path.join(out_dir, split, file_name), img[:, :, ::-1])
        images.append({"id": i + 1, "file_name": file_name, "width": w, "height": h})
        for o in objs:
            vis, full = o["visible"], o["full"]
            area = int(vis.sum())
            if area < 0.4 * full.sum() or area < 30:
                continue
            ys, xs = np.nonzero(vis)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            kp = []
            for x, y in o["kps"]:
                xi, yi = min(int(round(x)), w - 1), min(int(round(y)), h - 1)
                kp += [round(x, 1), round(y, 1), 2 if vis[yi, xi] else 1]
            seg = _rle(vis) if rng.random() < 0.1 else _polygons(vis)
            if not seg:
                continue
            anns.append({"id": ann_id, "image_id": i + 1, "category_id": o["cls"] + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": area, "iscrowd": 0, "segmentation": seg, "keypoints": kp, "num_keypoints": 5})
            ann_id += 1
    cats = [{"id": k + 1, "name": c, "supercategory": "shape", "keypoints": KEYPOINTS,
             "skeleton": [[1, 2], [1, 3], [1, 4], [1, 5]]} for k, c in enumerate(CLASSES)]
    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    with open(os.path.join(out_dir, "annotations", f"instances_{split}.json"), "w") as f:
        json.dump({"info": {"description": "TorchCV shapes_det", "seed": seed}, "images": images,
                   "annotations": anns, "categories": cats}, f)
    return len(images), len(anns)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/shapes_det")
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for split, n, seed in (("train", a.train, a.seed), ("val", a.val, a.seed + 1)):
        ni, na = make_split(a.out, split, n, seed)
        print(f"{split}: {ni} images, {na} instances -> {a.out}/annotations/instances_{split}.json")


if __name__ == "__main__":
    main()
