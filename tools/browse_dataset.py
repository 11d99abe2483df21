#!/usr/bin/env python
"""Draw a dataset's samples with their ground truth as PNGs, after the split's transforms (so this
also shows what augmentation does), for any task: class labels, colour masks, boxes and masks.

    python tools/browse_dataset.py CONFIG [--split train] [--num 20] [--out-dir work_dirs/browse] [key=value ...]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--split", default="train")
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--out-dir", default="work_dirs/browse")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args(argv)
    from torchcv.cli import _run
    return _run(lambda _: browse(a), argv, a.debug)


def browse(a) -> int:
    import torchcv  # noqa: F401
    from torchcv.config import load_config
    from torchcv.data.loading import SampleReader
    from torchcv.registry import TASKS
    from torchcv.visualization import save_rgb

    cfg = load_config(a.config, a.overrides)
    task = TASKS.get(cfg["task"])(cfg)
    dataset = task.build_dataset(a.split)
    reader = SampleReader(dataset, cfg["seed"], cfg["data"]["skip_corrupt"], train=a.split == "train")
    n = min(a.num, len(dataset))
    for i in range(n):
        item = reader[(i, 0)] if a.split == "train" else reader[i]
        if item is None:
            continue
        image, target, _ = item
        save_rgb(os.path.join(a.out_dir, f"{a.split}_{i:04d}.png"), task.draw_sample(image, target, dataset))
    print(f"{n} pictures -> {a.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
