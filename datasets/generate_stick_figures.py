#!/usr/bin/env python
"""Write the built-in person-keypoint dataset: stick figures with COCO's 17-joint skeleton in random
kinematic poses, 1-3 per image, in COCO person-keypoint format. Offline and deterministic by seed.

    python datasets/generate_stick_figures.py --out data/stick_figures [--seed 0] [--train 600 --val 120]
        [--size 256]

Writes ``<out>/{train,val}/<n>.png`` and ``<out>/annotations/person_keypoints_{train,val}.json``
(COCO's ``person`` category with its 17 keypoint names and 1-based skeleton; per instance ``bbox``,
``keypoints`` [x, y, v] * 17, ``num_keypoints``, ``area`` and an RLE ``segmentation`` of the figure's
silhouette).

Learnable by design: the left limbs are drawn in cool colours and the right limbs in warm ones (a
figure is seen from the front or from the back at random, so only the colours tell left from right);
the face has dark eyes, a red nose and darker ears. Visibility follows COCO: 2 visible, 1 labelled but
hidden (under an occluding rectangle drawn over the figure), 0 outside the image (x = y = 0).
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Dict, List, Tuple

import cv2
import numpy as np

NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
         "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
         "right_knee", "left_ankle", "right_ankle"]
SKELETON_1BASED = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                   [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
LIMBS = {"left": [(5, 7), (7, 9), (11, 13), (13, 15)], "right": [(6, 8), (8, 10), (12, 14), (14, 16)]}


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def pose(rng: np.random.Generator, center: np.ndarray, height: float) -> Tuple[np.ndarray, bool]:
    """17 joint positions (pixels) of a figure ``height`` tall around ``center``; and whether it is
    seen from the back (its left side then appears on the image's left)."""
    back = bool(rng.random() < 0.5)
    side = -1.0 if back else 1.0             # +1: the figure's left is on the image's right (front view)
    lean = rng.normal(0, 0.2)
    up = _rot(np.array([0.0, -1.0]), lean)   # torso direction, image y grows downwards
    across = np.array([-up[1], up[0]]) * side  # towards the figure's left
    pelvis = center + up * 0.05 * height
    neck = pelvis + up * 0.32 * height
    head = neck + up * 0.12 * height
    j = np.zeros((17, 2))
    j[5], j[6] = neck + across * 0.13 * height, neck - across * 0.13 * height
    j[11], j[12] = pelvis + across * 0.09 * height, pelvis - across * 0.09 * height
    down = -up
    for s_idx, e_idx, w_idx, sign in ((5, 7, 9, 1.0), (6, 8, 10, -1.0)):  # arms: shoulder, elbow, wrist
        a = sign * side * rng.uniform(-0.3, 2.6)       # raised sideways up to above the head
        upper = _rot(down, a) * 0.17 * height
        bend = sign * side * rng.uniform(0.0, 2.2)
        j[e_idx] = j[s_idx] + upper
        j[w_idx] = j[e_idx] + _rot(upper / np.linalg.norm(upper), bend) * 0.15 * height
    for h_idx, k_idx, a_idx, sign in ((11, 13, 15, 1.0), (12, 14, 16, -1.0)):  # legs: hip, knee, ankle
        a = sign * side * rng.uniform(-0.25, 0.8)
        thigh = _rot(down, a) * 0.24 * height
        bend = -sign * side * rng.uniform(0.0, 1.4)
        j[k_idx] = j[h_idx] + thigh
        j[a_idx] = j[k_idx] + _rot(thigh / np.linalg.norm(thigh), bend) * 0.22 * height
    r = 0.075 * height
    j[0] = head - up * 0.3 * r                                   # nose: a little below the head's centre
    j[1], j[2] = head + across * 0.4 * r + up * 0.15 * r, head - across * 0.4 * r + up * 0.15 * r
    j[3], j[4] = head + across * 0.95 * r, head - across * 0.95 * r
    return j, back


def draw_figure(img: np.ndarray, mask: np.ndarray, j: np.ndarray, height: float, back: bool,
                rng: np.random.Generator) -> None:
    t = max(2, int(round(0.06 * height)))
    skin = tuple(int(c) for c in rng.integers(150, 230, 3))
    torso = np.array([j[5], j[6], j[12], j[11]], np.int32)
    for canvas, value in ((img, skin), (mask, 1)):
        cv2.fillConvexPoly(canvas, torso, value, cv2.LINE_AA if canvas is img else cv2.LINE_8)
    shade = rng.uniform(0.8, 1.0)
    colours = {"left": (int(40 * shade), int(110 * shade), int(250 * shade)),
               "right": (int(250 * shade), int(120 * shade), int(30 * shade))}
    for side, limbs in LIMBS.items():
        for a, b in limbs:
            pa, pb = tuple(int(v) for v in j[a]), tuple(int(v) for v in j[b])
            cv2.line(img, pa, pb, colours[side], t, cv2.LINE_AA)
            cv2.line(mask, pa, pb, 1, t)
    head = (j[3] + j[4]) / 2
    r = max(3, int(round(0.075 * height)))
    hc = tuple(int(v) for v in head)
    cv2.circle(img, hc, r, skin, -1, cv2.LINE_AA)
    cv2.circle(mask, hc, r, 1, -1)
    dot = max(1, int(round(0.18 * r)))
    for k in (3, 4):  # ears: darker, at the head's sides (seen from both front and back)
        cv2.circle(img, tuple(int(v) for v in j[k]), dot + 1, tuple(int(c * 0.55) for c in skin), -1, cv2.LINE_AA)
    if not back:
        for k in (1, 2):
            cv2.circle(img, tuple(int(v) for v in j[k]), dot, (20, 20, 20), -1, cv2.LINE_AA)
        cv2.circle(img, tuple(int(v) for v in j[0]), dot, (200, 30, 30), -1, cv2.LINE_AA)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    c0, c1 = rng.integers(0, 200, 3), rng.integers(0, 200, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    img = (c0 * (1 - t) + c1 * t).astype(np.float32)
    img = np.ascontiguousarray(np.broadcast_to(img.transpose(1, 0, 2) if rng.random() < 0.5 else img,
                                               (size, size, 3)))
    img += rng.normal(0, 6, img.shape)
    for _ in range(rng.integers(2, 6)):  # clutter: lines that are not limbs
        p0, p1 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1),
                 tuple(float(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 3)))
    return img


def make_image(rng: np.random.Generator, size: int):
    img = background(rng, size)
    figures = []
    for _ in range(int(rng.integers(1, 4))):
        height = rng.uniform(0.35, 0.75) * size
        center = rng.uniform([0.15 * size, 0.35 * size], [0.85 * size, 0.7 * size])
        j, back = pose(rng, center, height)
        drawn = np.zeros((size, size), np.uint8)
        draw_figure(img, drawn, j, height, back, rng)
        figures.append({"joints": j, "back": back, "drawn": drawn.astype(bool), "visible": drawn.astype(bool)})
    for i, f in enumerate(figures):  # later figures are drawn over earlier ones
        for later in figures[i + 1:]:
            f["visible"] = f["visible"] & ~later["drawn"]
    occluders = []
    for _ in range(int(rng.integers(0, 3))):
        w, h = rng.integers(size // 10, size // 4, 2)
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        cv2.rectangle(img, (x, y), (int(x + w), int(y + h)), tuple(float(c) for c in rng.integers(0, 256, 3)), -1)
        occluders.append((x, y, int(x + w), int(y + h)))
        for f in figures:
            f["visible"][y:y + h, x:x + w] = False
    return np.clip(img, 0, 255).astype(np.uint8), figures, occluders


def annotate(figures: List[Dict], occluders, size: int, image_id: int, next_id: int):
    from pycocotools import mask as mask_utils
    anns = []
    for i, f in enumerate(figures):
        kps = []
        for k, (x, y) in enumerate(f["joints"]):
            if not (0 <= x < size and 0 <= y < size):
                kps += [0, 0, 0]  # outside the image: not labelled
                continue
            xi, yi = int(x), int(y)
            hidden = (any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in occluders)
                      or any(later["drawn"][yi, xi] for later in figures[i + 1:])
                      or (f["back"] and k in (0, 1, 2)))  # the face is on the other side
            kps += [round(float(x), 2), round(float(y), 2), 1 if hidden else 2]
        ys, xs = np.nonzero(f["visible"])
        if len(xs) < 20 or sum(1 for v in kps[2::3] if v > 0) < 3:
            continue  # almost entirely hidden or outside: not annotated
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        rle = mask_utils.encode(np.asfortranarray(f["visible"].astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        anns.append({"id": next_id + len(anns), "image_id": image_id, "category_id": 1, "iscrowd": 0,
                     "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], "area": int(f["visible"].sum()),
                     "segmentation": rle, "keypoints": kps, "num_keypoints": sum(1 for v in kps[2::3] if v > 0)})
    return anns


def write_split(out: str, split: str, n: int, size: int, rng: np.random.Generator) -> None:
    os.makedirs(os.path.join(out, split), exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img, figures, occluders = make_image(rng, size)
        name = f"{split}_{i:05d}.png"
        cv2.imwrite(os.path.join(out, split, name), img[:, :, ::-1])
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        anns += annotate(figures, occluders, size, i + 1, len(anns) + 1)
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": NAMES,
                            "skeleton": SKELETON_1BASED}]}
    os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
    path = os.path.join(out, "annotations", f"person_keypoints_{split}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)  # the run scripts test for this file: write it last, whole


def generate(out: str, seed: int = 0, n_train: int = 600, n_val: int = 120, size: int = 256) -> None:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        write_split(out, split, n, size, rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/stick_figures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--val", type=int, default=120)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    generate(a.out, a.seed, a.train, a.val, a.size)
    print(f"wrote {a.train} + {a.val} images of stick figures to {a.out}")


if __name__ == "__main__":
    main()
