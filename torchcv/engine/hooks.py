"""Hooks around the training step. Lower ``priority`` runs first at every event.

Events: ``before_run``, ``before_epoch``, ``before_iter``, ``after_backward`` (after each backward
of an optimizer, before its step; gradients are still AMP-scaled under fp16), ``after_iter``,
``after_epoch``, ``after_val``, ``after_run``. Hooks share per-iteration values through
``trainer.storage`` and keep what must survive a resume in ``state_dict()``.

Built-in hooks, by their name in ``default_hooks`` (null disables one, a ``{type: ...}`` entry
replaces it): timer (10) -> lr_scheduler (20) -> logger (30) -> eval (60) -> checkpoint (70) ->
plot (90). A user hook is any class registered in HOOKS, listed in ``custom_hooks: [{type: MyHook,
priority: 50, ...}]`` (with ``custom_imports`` naming its module).
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from collections import defaultdict
from typing import Any, Dict, List, Optional

import torch

from ..registry import HOOKS, ConfigError
from ..utils import dist
from .logger import bar, format_duration, logger


class Hook:
    priority = 50

    def before_run(self, trainer) -> None: ...
    def before_epoch(self, trainer) -> None: ...
    def before_iter(self, trainer) -> None: ...
    def after_backward(self, trainer, optim) -> None: ...
    def after_iter(self, trainer, losses: Dict[str, float]) -> None: ...
    def after_epoch(self, trainer) -> None: ...
    def after_val(self, trainer, metrics: Dict[str, float]) -> None: ...
    def after_run(self, trainer) -> None: ...

    def state_dict(self) -> Dict[str, Any]:
        """What this hook needs to continue exactly after a resume (saved in every checkpoint)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...


EVENTS = ("before_run", "before_epoch", "before_iter", "after_backward", "after_iter", "after_epoch", "after_val",
          "after_run")


@HOOKS.register()
class IterTimerHook(Hook):
    """``time`` (seconds per iteration) and ``data_time`` (waiting for the batch) into the storage."""

    priority = 10

    def before_run(self, trainer):
        self.t = time.perf_counter()

    def before_epoch(self, trainer):
        self.t = time.perf_counter()

    def before_iter(self, trainer):
        trainer.storage.put("data_time", time.perf_counter() - self.t)

    def after_iter(self, trainer, losses):
        now = time.perf_counter()
        trainer.storage.put("time", now - self.t)
        self.t = now


@HOOKS.register()
class LrSchedulerHook(Hook):
    """Sets every optimizer's LR for the coming iteration; ``lr/<name>`` (and ``lr``, the first
    optimizer's) into the storage."""

    priority = 20

    def before_iter(self, trainer):
        for i, (name, optim) in enumerate(trainer.optims.items()):
            optim.scheduler.step(trainer.iter)
            trainer.storage.put(f"lr/{name}", optim.lr)
            if i == 0:
                trainer.storage.put("lr", optim.lr)


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _is_lr(key: str) -> bool:
    return key == "lr" or key.startswith("lr/")


@HOOKS.register()
class LoggerHook(Hook):
    """Window-averaged storage values every ``train.log_interval`` iterations (and at each epoch
    end): a console line, a metrics.jsonl record and TensorBoard scalars. The open window is part
    of the hook's state, so a resumed run logs exactly what an uninterrupted one would."""

    priority = 30

    def __init__(self):
        self.window: Dict[str, List[float]] = defaultdict(list)

    def before_run(self, trainer):
        self.run_start = time.perf_counter()
        self.iter_at_start = trainer.iter

    def after_iter(self, trainer, losses):
        for k, v in trainer.storage.items():
            self.window[k].append(v)
        trainer.progress.update(self._line(trainer, {k: v[-1] for k, v in self.window.items()}))
        # the window also closes at each epoch end, so a resumed run logs the same windows
        if (trainer.iter % trainer.log_interval == 0 or trainer.inner_iter == trainer.iters_per_epoch
                or trainer.iter == trainer.max_iters):
            self.flush(trainer)

    def after_run(self, trainer):
        self.flush(trainer)

    def state_dict(self):
        return {"window": {k: list(v) for k, v in self.window.items()}}

    def load_state_dict(self, state):
        self.window = defaultdict(list, {k: list(v) for k, v in (state.get("window") or {}).items()})

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
        lrs = {k: v for k, v in means.items() if k.startswith("lr/")}
        lr = (f"lr {means.get('lr', 0.0):.3e}" if len(lrs) <= 1
              else "  ".join(f"{k} {v:.3e}" for k, v in sorted(lrs.items())))
        shown = [k for k in means if k not in ("time", "data_time") and not _is_lr(k)]
        shown.sort(key=lambda k: not k.startswith("loss"))  # losses first, then other scalars
        scalars = "  ".join(f"{k} {means[k]:.4f}" for k in shown)
        return (f"{where}  eta {format_duration(eta)}  {lr}  {scalars}  "
                f"{1.0 / t if t > 0 else 0:.2f} it/s  data {means.get('data_time', 0):.3f}s  "
                f"mem {memory_mb(trainer.device):.0f}M")

    def flush(self, trainer):
        if not self.window:
            return
        keys = sorted(self.window)
        # learning rates are reported as set for the last iteration, everything else as a window mean
        means = torch.tensor([self.window[k][-1] if _is_lr(k) else sum(self.window[k]) / len(self.window[k])
                              for k in keys], dtype=torch.float64)
        means = dist.all_reduce_mean(means)
        avg = dict(zip(keys, means.tolist()))
        self.window.clear()
        loss_keys = [k for k in keys if k.startswith("loss")]
        if "loss" not in loss_keys:
            avg["loss"] = sum(avg[k] for k in loss_keys)
        first = ["loss"] + [k for k in loss_keys if k != "loss"]
        rest = [k for k in keys if k not in first and k not in ("time", "data_time")]
        record = {"mode": "train", "epoch": trainer.epoch + 1, "iter": trainer.iter,
                  **{k: avg[k] for k in first}, **{k: avg[k] for k in rest},
                  "time": avg.get("time", 0.0), "data_time": avg.get("data_time", 0.0),
                  "memory_mb": round(memory_mb(trainer.device), 1)}
        if dist.is_main():
            trainer.progress.clear()
            logger.info(self._line(trainer, avg))
            trainer.metrics_writer.write(record, trainer.iter, "train")


@HOOKS.register()
class EvalHook(Hook):
    """Validates every ``train.val_interval`` epochs (or iterations) and at the end of training."""

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
    """``epoch_N.pth`` / ``iter_N.pth`` every ``train.checkpoint_interval`` (and at the end), and
    ``best.pth`` when ``evaluation.metric`` improves by ``evaluation.rule``. The best score so far is
    this hook's state."""

    priority = 70

    def __init__(self):
        self.best_score: Optional[float] = None
        self.best_iter: Optional[int] = None

    def after_epoch(self, trainer):
        if trainer.by_epoch and (trainer.epoch % trainer.checkpoint_interval == 0 or trainer.epoch == trainer.max_epochs):
            trainer.save_checkpoint(f"epoch_{trainer.epoch}.pth")

    def after_iter(self, trainer, losses):
        if not trainer.by_epoch and (trainer.iter % trainer.checkpoint_interval == 0 or trainer.iter == trainer.max_iters):
            trainer.save_checkpoint(f"iter_{trainer.iter}.pth")

    def is_better(self, trainer, metrics: Dict[str, float]) -> bool:
        name = trainer.best_metric_name
        if not name:
            return False
        if name not in metrics:
            raise ConfigError(f"evaluation.metric: '{name}' is not among the computed metrics "
                              f"({', '.join(k for k in metrics if '/' not in k)})")
        score = metrics[name]
        if self.best_score is None:
            return True
        return score > self.best_score if trainer.rule == "greater" else score < self.best_score

    def after_val(self, trainer, metrics):
        if trainer.save_best and self.is_better(trainer, metrics):
            self.best_score, self.best_iter = float(metrics[trainer.best_metric_name]), trainer.iter
            trainer.save_best_checkpoint(metrics)

    def state_dict(self):
        return {"best_score": self.best_score, "best_iter": self.best_iter}

    def load_state_dict(self, state):
        self.best_score = state.get("best_score")
        self.best_iter = state.get("best_iter")


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
        lr_keys = sorted({k for r in train for k in r if k.startswith("lr/")}) or ["lr"]
        for k in lr_keys:
            ax.plot(its, [r.get(k, math.nan) for r in train], label=k.split("/", 1)[-1])
        if len(lr_keys) > 1:
            ax.legend()
        ax.set_xlabel("iteration"), ax.set_ylabel("learning rate"), ax.grid(alpha=.3)
        save(fig, "lr.png")
    if val:
        keys = [k for k in val[-1] if k not in ("mode", "epoch", "iter") and "/" not in k
                and isinstance(val[-1][k], (int, float)) and not isinstance(val[-1][k], bool)][:8]
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

