#!/usr/bin/env python
"""Write the built-in classification dataset (ImageFolder layout + list files), offline and deterministic.

    python datasets/generate_shapes_cls.py --out data/shapes_cls [--seed 0] [--train 3000 --val 600 --test 600]

Six classes of coloured shapes (circle, square, triangle, star, cross, ring) with random colour,
size, rotation and position on noisy gradient backgrounds with faint clutter, written as 32x32 PNGs:
``<out>/{train,val,test}/<class>/<n>.png`` plus ``<out>/{train,val,test}.txt`` ("path label").
"""
from __future__ import annotations

import argparse
import math
import os

import cv2
import numpy as np

CLASSES = ["circle", "square", "triangle", "star", "cross", "ring"]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    img = (c0 * (1 - t) + c1 * t).astype(np.float32)
    if rng.random() < 0.5:
        img = img.transpose(1, 0, 2)
    img = np.ascontiguousarray(np.broadcast_to(img, (size, size, 3)))
    for _ in range(rng.integers(0, 3)):  # clutter: small faint blobs (lines would mimic shape edges)
        color = img[0, 0] * 0.7 + rng.integers(0, 256, 3) * 0.3
        c = tuple(int(x) for x in rng.integers(0, size, 2))
        cv2.circle(img, c, int(rng.integers(1, 3)), tuple(float(x) for x in color), -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return img


def polygon(cx, cy, r, n, rot, inner=None):
    pts = []
    for i in range(n * (2 if inner else 1)):
        a = rot + math.pi * 2 * i / (n * (2 if inner else 1))
        rr = (r if i % 2 == 0 else inner) if inner else r
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return np.array(pts, dtype=np.int32)


def draw(img: np.ndarray, cls: str, rng: np.random.Generator) -> None:
    size = img.shape[0]
    r = rng.uniform(0.25, 0.4) * size
    cx, cy = rng.uniform(r, size - r, 2)
    rot = rng.uniform(0, 2 * math.pi)
    bg = img[int(cy), int(cx)]
    while True:  # a colour that stands out from the background under it
        color = rng.integers(0, 256, 3)
        if np.abs(color - bg).sum() > 150:
            break
    color = tuple(int(x) for x in color)
    c = (int(cx), int(cy))
    if cls == "circle":
        cv2.circle(img, c, int(r), color, -1, cv2.LINE_AA)
    elif cls == "ring":
        cv2.circle(img, c, int(r), color, max(2, int(r * 0.3)), cv2.LINE_AA)
    elif cls == "square":
        cv2.fillPoly(img, [polygon(cx, cy, r, 4, rot)], color, cv2.LINE_AA)
    elif cls == "triangle":
        cv2.fillPoly(img, [polygon(cx, cy, r, 3, rot)], color, cv2.LINE_AA)
    elif cls == "star":
        cv2.fillPoly(img, [polygon(cx, cy, r, 5, rot, inner=r * 0.45)], color, cv2.LINE_AA)
    elif cls == "cross":
        w = r * 0.35
        for a in (rot, rot + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            pts = np.array([(cx + dx * r - dy * w, cy + dy * r + dx * w), (cx + dx * r + dy * w, cy + dy * r - dx * w),
                            (cx - dx * r + dy * w, cy - dy * r - dx * w), (cx - dx * r - dy * w, cy - dy * r + dx * w)],
                           dtype=np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)


def generate(out: str, seed: int = 0, counts=(("train", 3000), ("val", 600), ("test", 600)), size: int = 32) -> None:
    for split_i, (split, n) in enumerate(counts):
        rng = np.random.default_rng([seed, split_i])
        lines = []
        for i in range(n):
            cls_i = i % len(CLASSES)
            img = background(rng, size)
            draw(img, CLASSES[cls_i], rng)
            folder = os.path.join(out, split, CLASSES[cls_i])
            os.makedirs(folder, exist_ok=True)
            name = f"{i:05d}.png"
            cv2.imwrite(os.path.join(folder, name), np.clip(img, 0, 255).astype(np.uint8))
            lines.append(f"{split}/{CLASSES[cls_i]}/{name} {cls_i}\n")
        with open(os.path.join(out, f"{split}.txt"), "w") as f:
            f.writelines(lines)
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/shapes_cls")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--val", type=int, default=600)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--size", type=int, default=32)
    a = ap.parse_args()
    tmp = a.out.rstrip("/") + ".partial"
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, a.seed, (("train", a.train), ("val", a.val), ("test", a.test)), a.size)
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(tmp, a.out)  # the data folder appears complete or not at all
    print(f"wrote {a.train + a.val + a.test} images of {len(CLASSES)} classes to {a.out}")


if __name__ == "__main__":
    main()
