#!/usr/bin/env python
"""Write the built-in segmentation dataset "shapes_seg" in the PASCAL VOC 2012 layout.

    python datasets/generate_shapes_seg.py --out data/shapes_seg [--size 96] [--train 400] [--val 80]
                                           [--test 40] [--seed 0]

Layout: JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNG, the VOC colour map),
ImageSets/Segmentation/{train,val,test}.txt, classes.txt. Classes: 0 background, 1 circle,
2 square, 3 triangle. Each image holds 1-4 filled shapes on a textured background; every shape's
outline is labelled 255 (ignore), like VOC's object borders. A shape's class is given by its
geometry; its colour is random around a per-class hue with a wide spread, so a model must use
both shape and colour. The same seed always gives the same files.
"""
from __future__ import annotations

import argparse
import os

import cv2
import numpy as np
from PIL import Image

CLASSES = ("background", "circle", "square", "triangle")
_HUES = {1: 0, 2: 60, 3: 120}   # OpenCV hue (0..179) centre per class


def _voc_palette() -> list:
    pal = []
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(60, 190, 3)
    slope = rng.uniform(-50, 50, (2, 3))
    img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    img += rng.normal(0, 12, (size, size, 3))
    return img


def _shape_polygon(rng: np.random.Generator, cls: int, size: int):
    r = rng.uniform(0.10, 0.22) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if cls == 1:
        return ("circle", (int(cx), int(cy)), int(r))
    angle = rng.uniform(0, 2 * np.pi)
    n = 4 if cls == 2 else 3
    pts = [(cx + r * np.cos(angle + 2 * np.pi * k / n), cy + r * np.sin(angle + 2 * np.pi * k / n)) for k in range(n)]
    return ("poly", np.array(pts, dtype=np.int32).reshape(-1, 1, 2), None)


def make_sample(rng: np.random.Generator, size: int):
    img = _background(rng, size)
    label = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(1, 4))
        kind, geom, radius = _shape_polygon(rng, cls, size)
        hue = (_HUES[cls] + rng.normal(0, 12)) % 180
        hsv = np.uint8([[[hue, rng.uniform(120, 255), rng.uniform(120, 255)]]])
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        shape_mask = np.zeros((size, size), dtype=np.uint8)
        if kind == "circle":
            cv2.circle(shape_mask, geom, radius, 1, -1, lineType=cv2.LINE_8)
            border = cv2.circle(np.zeros_like(shape_mask), geom, radius, 1, 2)
        else:
            cv2.fillPoly(shape_mask, [geom], 1)
            border = cv2.polylines(np.zeros_like(shape_mask), [geom], True, 1, 2)
        inside = shape_mask.astype(bool)
        img[inside] = colour + rng.normal(0, 10, (inside.sum(), 3))
        label[inside] = cls
        label[border.astype(bool)] = 255
    return np.clip(img, 0, 255).astype(np.uint8), label


def generate(out: str, size: int = 96, n_train: int = 400, n_val: int = 80, n_test: int = 40, seed: int = 0) -> None:
    for d in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    palette = _voc_palette()
    for split, n, offset in (("train", n_train, 0), ("val", n_val, 1), ("test", n_test, 2)):
        rng = np.random.default_rng([seed, offset])
        ids = []
        for i in range(n):
            img, label = make_sample(rng, size)
            name = f"{split}_{i:05d}"
            Image.fromarray(img).save(os.path.join(out, "JPEGImages", name + ".jpg"), quality=95)
            png = Image.fromarray(label, mode="P")
            png.putpalette(palette)
            png.save(os.path.join(out, "SegmentationClass", name + ".png"))
            ids.append(name)
        with open(os.path.join(out, "ImageSets", "Segmentation", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/shapes_seg")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--val", type=int, default=80)
    p.add_argument("--test", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    generate(a.out, a.size, a.train, a.val, a.test, a.seed)
    print(f"wrote {a.train}/{a.val}/{a.test} train/val/test samples to {a.out}")


if __name__ == "__main__":
    main()
