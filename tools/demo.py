#!/usr/bin/env python
"""Run a trained model on an image or a folder of images and draw its predictions (PNG), for any
task: classification (top-k labels), segmentation (colour overlay), detection (boxes and masks),
video classification (video files: a strip of frames with the top-k labels).

    python tools/demo.py CONFIG CHECKPOINT INPUT [--out-dir work_dirs/demo] [--score-thr 0.5]
        [--split val] [--device cpu] [key=value ...]

The image goes through the evaluation transforms of ``--split``'s dataset (resize, normalisation);
class names and colours come from that dataset when its files exist, otherwise labels are numbers.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torchcv.data.image_io import IMG_EXTENSIONS  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("input", help="an image file or a folder of images")
    ap.add_argument("--out-dir", default="work_dirs/demo")
    ap.add_argument("--score-thr", type=float, default=0.5, help="detection: draw boxes scoring at least this")
    ap.add_argument("--split", default="val", help="whose dataset gives the transforms and class names")
    ap.add_argument("--device", default=None)
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args(argv)
    from torchcv.cli import _run
    return _run(lambda _: demo(a), argv, a.debug)


def demo(a) -> int:
    import logging

    import torch

    import torchcv  # noqa: F401
    from torchcv.config import load_config
    from torchcv.registry import TASKS
    from torchcv.utils.errors import DataError, TorchCVError
    from torchcv.utils.weights import load_weights
    from torchcv.visualization import save_rgb

    cfg = load_config(a.config, a.overrides)
    task = TASKS.get(cfg["task"])(cfg)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = task.build_model()
    load_weights(model, a.checkpoint)
    model.to(device).eval()
    dataset = None
    if task.has_split(a.split):
        try:
            dataset = task.build_dataset(a.split)
        except TorchCVError as e:  # the dataset is not on this machine: plain inputs, numeric labels
            logging.getLogger("torchcv").warning("no %s dataset (%s): using the image as it is", a.split, e)
    extensions = getattr(task, "input_extensions", IMG_EXTENSIONS)  # a video task takes video files
    if os.path.isdir(a.input):
        files = [os.path.join(a.input, f) for f in sorted(os.listdir(a.input)) if f.lower().endswith(extensions)]
    else:
        files = [a.input]
    if not files:
        raise DataError(f"no inputs found in {a.input} (extensions {', '.join(extensions)})")
    for path in files:
        pred = task.predict_image(model, path, dataset, device)
        picture = task.draw_prediction(pred["image"], pred["output"], pred["meta"], dataset, score_thr=a.score_thr)
        dst = os.path.join(a.out_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
        save_rgb(dst, picture)
        print(f"{path} -> {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
