#!/usr/bin/env python
"""Draw a detection dataset's annotations (boxes, labels, masks) onto its images as PNGs.

    python tools/browse_dataset.py CONFIG [--split train] [--num 20] [--out-dir work_dirs/browse] [key=value ...]

The images go through the split's transforms, so this also shows what augmentation does.
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def draw_instances(image, boxes, labels, class_names=None, scores=None, masks=None, score_thr=0.0):
    """image: float (3, H, W) in [0, 1] or uint8 HWC RGB; returns uint8 HWC RGB with the drawing."""
    import torch
    if isinstance(image, torch.Tensor):
        image = (image.clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    img = np.ascontiguousarray(image).copy()
    boxes = np.asarray(boxes.cpu() if hasattr(boxes, "cpu") else boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    scores = None if scores is None else np.asarray(scores.cpu() if hasattr(scores, "cpu") else scores)
    if masks is not None:
        masks = masks.cpu().numpy() if hasattr(masks, "cpu") else np.asarray(masks)
        if masks.ndim == 4:
            masks = masks[:, 0]
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        if scores is not None and scores[i] < score_thr:
            continue
        color = PALETTE[int(lab) % len(PALETTE)]
        if masks is not None and i < len(masks):
            m = masks[i] > 0.5
            img[m] = (0.5 * img[m] + 0.5 * np.array(color)).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        cv2.rectangle(img, (x0, y0), (x1, y1), color, 1)
        name = class_names[int(lab)] if class_names and int(lab) < len(class_names) else str(int(lab))
        text = name if scores is None else f"{name} {scores[i]:.2f}"
        cv2.putText(img, text, (x0, max(y0 - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1, cv2.LINE_AA)
    return img


def save_rgb(path, img):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, img[:, :, ::-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--split", default="train")
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--out-dir", default="work_dirs/browse")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args(argv)
    from torchcv.config import load_config
    from torchcv.registry import TASKS
    cfg = load_config(a.config, a.overrides)
    ds = TASKS.get(cfg["task"])(cfg).build_dataset(a.split)
    names = getattr(ds, "classes", None)
    for i in range(min(a.num, len(ds))):
        img, t, meta = ds[i]
        out = draw_instances(img, t["boxes"], t["labels"], names, masks=t.get("masks"))
        save_rgb(os.path.join(a.out_dir, f"{a.split}_{i:04d}.png"), out)
    print(f"{min(a.num, len(ds))} pictures -> {a.out_dir}")


if __name__ == "__main__":
    main()
