#!/usr/bin/env python
"""Run a trained detector on an image or a folder of images and draw the predictions (PNG).

    python tools/demo.py CONFIG CHECKPOINT INPUT [--out-dir work_dirs/demo] [--score-thr 0.5] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from browse_dataset import draw_instances, save_rgb  # noqa: E402  (same folder)

EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("input", help="an image file or a folder of images")
    ap.add_argument("--out-dir", default="work_dirs/demo")
    ap.add_argument("--score-thr", type=float, default=0.5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--classes", nargs="*", default=None, help="class names (default: from the val dataset)")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args(argv)
    from torchcv.config import load_config
    from torchcv.engine.checkpoint import load_weights
    from torchcv.registry import MODELS
    cfg = load_config(a.config, a.overrides)
    model = MODELS.build(cfg["model"], key="model")
    load_weights(model, a.checkpoint)
    model.to(a.device).eval()
    names = a.classes
    if names is None:
        try:
            from torchcv.registry import TASKS
            names = TASKS.get(cfg["task"])(cfg).build_dataset("val").classes
        except Exception:  # no dataset on this machine: numeric labels
            names = None
    files = ([os.path.join(a.input, f) for f in sorted(os.listdir(a.input)) if f.lower().endswith(EXTS)]
             if os.path.isdir(a.input) else [a.input])
    if not files:
        raise SystemExit(f"no images found in {a.input}")
    for path in files:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read image {path}")
        rgb = bgr[:, :, ::-1].copy()
        x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).to(a.device)
        with torch.no_grad():
            out = model([x])[0]
        keep = out["scores"] >= a.score_thr
        drawn = draw_instances(rgb, out["boxes"][keep], out["labels"][keep], names, scores=out["scores"][keep],
                               masks=out["masks"][keep] if "masks" in out else None)
        dst = os.path.join(a.out_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
        save_rgb(dst, drawn)
        print(f"{path}: {int(keep.sum())} detections -> {dst}")


if __name__ == "__main__":
    main()
