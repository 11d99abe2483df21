#!/usr/bin/env python
"""Training throughput of our Trainer vs a plain hand-written PyTorch loop (torchvision references
style) on the same model, data, batch size and optimizer, in the same process.

    python tools/benchmark_train.py [--config configs/cls/shapes/resnet18_shapes.yaml] [--epochs 1]
        [--repeats 3] [--out benchmarks/train_cpu.md] [key=value ...]

Each repeat runs the plain loop and the trainer (alternating, so drift hits both alike) and reports
two figures for the trainer: *everything* (``Trainer.train()`` from start to end: building the
dataset, model and TensorBoard writer, hooks, logging, and the end-of-run checkpoint written with
fsync) and the *step path* (from the first batch to the last optimizer step, as the plain loop is
timed: data reading with per-sample seeded streams, the optimizer wrapper, hooks, logging). The
median images/s is reported with the ratios ours/plain (1.0 = no overhead). Validation is off.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torchcv  # noqa: E402,F401
from torchcv.config import load_config  # noqa: E402
from torchcv.engine.hooks import Hook  # noqa: E402
from torchcv.engine.optim import build_lr_scheduler, build_optimizer  # noqa: E402
from torchcv.engine.trainer import Trainer  # noqa: E402
from torchcv.registry import HOOKS, MODELS  # noqa: E402


def plain_loop(cfg, epochs: int) -> float:
    """What a user would write by hand: DataLoader, model, SGD, per-iteration LR, backward, step."""
    torch.manual_seed(0)
    task_cls = torchcv.registry.TASKS.get(cfg["task"])
    task = task_cls(cfg)
    dataset = task.build_dataset("train")
    bs = cfg["data"]["batch_size"]
    loader = torch.utils.data.DataLoader(dataset, batch_size=bs, shuffle=True, drop_last=True,
                                         num_workers=cfg["data"]["num_workers"], collate_fn=task.collate)
    model = MODELS.build(cfg["model"]).net  # the bare torchvision network
    optimizer = build_optimizer(model, cfg["optimizer"])
    sched = build_lr_scheduler(optimizer, cfg["lr_schedule"], epochs * len(loader), len(loader), True)
    model.train()
    n, it = 0, 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for images, labels, _ in loader:
            sched.step(it)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n += images.shape[0]
            it += 1
    return n / (time.perf_counter() - t0)


@HOOKS.register()
class StepPathTimer(Hook):
    """Runs first at every event: the time from the start of the loop to the end of the last step."""

    priority = 0

    def before_run(self, trainer):
        self.start = self.end = time.perf_counter()

    def after_iter(self, trainer, losses):
        self.end = time.perf_counter()


def ours(cfg, epochs: int):
    """(images/s of the whole run, images/s of the step path)."""
    torch.manual_seed(0)
    cfg = type(cfg)(cfg, custom_hooks=[{"type": "StepPathTimer"}])
    with tempfile.TemporaryDirectory() as wd:
        trainer = Trainer(cfg, wd)
        t0 = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - t0
        n = trainer.iter * cfg["data"]["batch_size"]
        timer = next(h for h in trainer.hooks if isinstance(h, StepPathTimer))
    return n / elapsed, n / (timer.end - timer.start)


def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/cls/shapes/resnet18_shapes.yaml")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="append a markdown row to this file")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    over = [f"train.max_epochs={a.epochs}", "data.test=null", "+data.val=null", "train.plot=false", "data.num_workers=0",
            "train.log_interval=50"] + a.overrides
    cfg = load_config(a.config, over)
    if not os.path.isdir(cfg["data"]["root"]):
        subprocess.check_call([sys.executable, "datasets/generate_shapes_cls.py", "--out", cfg["data"]["root"]])
    import logging
    logging.getLogger("torchcv").setLevel(logging.WARNING)
    plain_runs, our_runs, step_runs = [], [], []
    for r in range(a.repeats):
        plain_runs.append(plain_loop(cfg, a.epochs))
        whole, step = ours(cfg, a.epochs)
        our_runs.append(whole)
        step_runs.append(step)
        print(f"repeat {r + 1}: plain {plain_runs[-1]:.1f} img/s   ours {our_runs[-1]:.1f} img/s   "
              f"ours, step path {step_runs[-1]:.1f} img/s", flush=True)
    p, o, st = statistics.median(plain_runs), statistics.median(our_runs), statistics.median(step_runs)
    desc = f"{cfg['model']['arch']}, batch {cfg['data']['batch_size']}, {a.epochs} epoch(s) x {a.repeats} repeats"
    print(f"\n{desc}\nplain loop: {p:.1f} img/s\ntorchcv trainer, everything: {o:.1f} img/s   ratio ours/plain "
          f"{o / p:.3f} (overhead {100 * (1 - o / p):+.1f}%)\ntorchcv trainer, step path: {st:.1f} "
          f"img/s   ratio ours/plain {st / p:.3f} (overhead {100 * (1 - st / p):+.1f}%)\nmachine: {machine()}")
    if a.out:
        new = not os.path.exists(a.out)
        with open(a.out, "a") as f:
            if new:
                f.write("| model / setting | plain loop img/s | torchcv img/s (ratio), everything | torchcv img/s "
                        "(ratio), step path | machine |\n|---|---|---|---|---|\n")
            f.write(f"| {desc} | {p:.1f} | {o:.1f} ({o / p:.3f}) | {st:.1f} ({st / p:.3f}) | {machine()} |\n")


if __name__ == "__main__":
    main()
