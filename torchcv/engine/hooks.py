"""Hooks around the training step. Lower ``priority`` runs first at every event.

Built-in order: timer (10) -> LR schedule (20) -> logger (30) -> evaluation (60) -> checkpoint (70)
-> plots (90). A user hook is any class registered in HOOKS, listed in the config's
``custom_hooks: [{type: MyHook, priority: 50, ...}]``.
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from collections import defaultdict
from typing import Dict, List

import torch

from ..registry import HOOKS
from . import dist
from .logger import bar, format_duration, logger


class Hook:
    priority = 50

    def before_run(self, trainer) -> None: ...
    def before_epoch(self, trainer) -> None: ...
    def before_iter(self, trainer) -> None: ...
    def after_iter(self, trainer, losses: Dict[str, float]) -> None: ...
    def after_epoch(self, trainer) -> None: ...
    def after_val(self, trainer, metrics: Dict[str, float]) -> None: ...
    def after_run(self, trainer) -> None: ...


@HOOKS.register()
class IterTimerHook(Hook):
    priority = 10

    def before_run(self, trainer):
        self.t = time.perf_counter()

    def before_epoch(self, trainer):
        self.t = time.perf_counter()

    def before_iter(self, trainer):
        trainer.timing["data_time"] = time.perf_counter() - self.t

    def after_iter(self, trainer, losses):
        now = time.perf_counter()
        trainer.timing["time"] = now - self.t
        self.t = now


@HOOKS.register()
class LrSchedulerHook(Hook):
    priority = 20

    def before_iter(self, trainer):
        trainer.scheduler.step(trainer.iter)


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@HOOKS.register()
class LoggerHook(Hook):
    """Window-averaged losses every ``train.log_interval`` iterations (and at each epoch end)."""

    priority = 30

    def before_run(self, trainer):
        self.window: Dict[str, List[float]] = defaultdict(list)
        self.run_start = time.perf_counter()
        self.iter_at_start = trainer.iter

    def after_iter(self, trainer, losses):
        for k, v in losses.items():
            self.window[k].append(v)
        self.window["time"].append(trainer.timing.get("time", 0.0))
        self.window["data_time"].append(trainer.timing.get("data_time", 0.0))
        trainer.progress.update(self._line(trainer, {k: v[-1] for k, v in self.window.items()}))
        # the window also closes at each epoch end, so a resumed run logs the same windows
        if (trainer.iter % trainer.log_interval == 0 or trainer.inner_iter == trainer.iters_per_epoch
                or trainer.iter == trainer.max_iters):
            self.flush(trainer)

    def after_run(self, trainer):
        self.flush(trainer)

    def _line(self, trainer, means: Dict[str, float]) -> str:
        t = means.get("time", 0.0)
        remaining = trainer.max_iters - trainer.iter
        elapsed = time.perf_counter() - self.run_start
        done = max(1, trainer.iter - self.iter_at_start)
        eta = elapsed / done * remaining
        if trainer.by_epoch:
            where = f"Epoch [{trainer.epoch + 1}/{trainer.max_epochs}]{bar(trainer.inner_iter, trainer.iters_per_epoch)}"
        else:
            where = f"Iter {bar(trainer.iter, trainer.max_iters)}"
        losses = "  ".join(f"{k} {v:.4f}" for k, v in means.items() if k.startswith("loss"))
        return (f"{where}  eta {format_duration(eta)}  lr {trainer.current_lr():.3e}  {losses}  "
                f"{1.0 / t if t > 0 else 0:.2f} it/s  data {means.get('data_time', 0):.3f}s  "
                f"mem {memory_mb(trainer.device):.0f}M")

    def flush(self, trainer):
        if not self.window:
            return
        keys = sorted(self.window)
        means = torch.tensor([sum(self.window[k]) / len(self.window[k]) for k in keys], dtype=torch.float64)
        means = dist.all_reduce_mean(means)
        avg = dict(zip(keys, means.tolist()))
        self.window.clear()
        loss_keys = [k for k in keys if k.startswith("loss")]
        avg["loss"] = sum(avg[k] for k in loss_keys) if "loss" not in loss_keys else avg["loss"]
        record = {"mode": "train", "epoch": trainer.epoch + 1, "iter": trainer.iter,
                  "lr": trainer.current_lr(), **{k: avg[k] for k in ["loss"] + [k for k in loss_keys if k != "loss"]},
                  "time": avg["time"], "data_time": avg["data_time"], "memory_mb": round(memory_mb(trainer.device), 1)}
        if dist.is_main():
            trainer.progress.clear()
            logger.info(self._line(trainer, avg))
            trainer.metrics_writer.write(record, trainer.iter, "train")


@HOOKS.register()
class EvalHook(Hook):
    priority = 60

    def _due(self, trainer, count: int, total: int) -> bool:
        return trainer.val_loader is not None and (count % trainer.val_interval == 0 or count == total)

    def after_epoch(self, trainer):
        if trainer.by_epoch and self._due(trainer, trainer.epoch, trainer.max_epochs):
            trainer.validate()

    def after_iter(self, trainer, losses):
        if not trainer.by_epoch and self._due(trainer, trainer.iter, trainer.max_iters):
            trainer.validate()


@HOOKS.register()
class CheckpointHook(Hook):
    priority = 70

    def after_epoch(self, trainer):
        if trainer.by_epoch and (trainer.epoch % trainer.checkpoint_interval == 0 or trainer.epoch == trainer.max_epochs):
            trainer.save_checkpoint(f"epoch_{trainer.epoch}.pth")

    def after_iter(self, trainer, losses):
        if not trainer.by_epoch and (trainer.iter % trainer.checkpoint_interval == 0 or trainer.iter == trainer.max_iters):
            trainer.save_checkpoint(f"iter_{trainer.iter}.pth")

    def after_val(self, trainer, metrics):
        if trainer.save_best and trainer.is_better(metrics):
            trainer.save_best_checkpoint(metrics)


def read_metrics(path: str) -> List[dict]:
    out = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out


def plot_curves(work_dir: str) -> List[str]:
    """loss / lr / metric curves from metrics.jsonl as PNGs under work_dir/plots."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(os.path.join(work_dir, "metrics.jsonl"))
    train = [r for r in records if r.get("mode") == "train"]
    val = [r for r in records if r.get("mode") == "val"]
    out_dir = os.path.join(work_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    if train:
        its = [r["iter"] for r in train]
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in sorted({k for r in train for k in r if k.startswith("loss")}):
            ax.plot(its, [r.get(k, math.nan) for r in train], label=k, linewidth=2 if k == "loss" else 1)
        ax.set_xlabel("iteration"), ax.set_ylabel("loss"), ax.set_title("training loss"), ax.legend(), ax.grid(alpha=.3)
        save(fig, "loss.png")
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot(its, [r["lr"] for r in train])
        ax.set_xlabel("iteration"), ax.set_ylabel("learning rate"), ax.grid(alpha=.3)
        save(fig, "lr.png")
    if val:
        keys = [k for k in val[-1] if k not in ("mode", "epoch", "iter") and "/" not in k
                and isinstance(val[-1][k], (int, float))][:8]
        if keys:
            fig, ax = plt.subplots(figsize=(7, 4))
            for k in keys:
                ax.plot([r["iter"] for r in val], [r.get(k, math.nan) for r in val], marker="o", label=k)
            ax.set_xlabel("iteration"), ax.set_title("validation metrics"), ax.legend(), ax.grid(alpha=.3)
            save(fig, "val_metrics.png")
    return written


@HOOKS.register()
class PlotHook(Hook):
    priority = 90

    def after_val(self, trainer, metrics):
        if trainer.plot and dist.is_main():
            plot_curves(trainer.work_dir)

    def after_run(self, trainer):
        if trainer.plot and dist.is_main():
            paths = plot_curves(trainer.work_dir)
            logger.info("plots: %s", ", ".join(os.path.relpath(p) for p in paths))

