"""The generic trainer: builds what the config names, runs epochs or iterations with hooks around
each step, validates, checkpoints, resumes and tests. It never knows the task: the Task builds the
model and data, and the model returns a dict of losses (DESIGN principle 1)."""
from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import random
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import Config, config_from_text, save_config
from ..registry import HOOKS, TASKS, ConfigError
from . import dist
from .checkpoint import (CheckpointError, find_resume_checkpoint, list_checkpoints, load_checkpoint, load_weights,
                         rng_state, save_checkpoint, set_pointer, set_rng_state, unwrap)
from .fileio import atomic_write_text
from .hooks import Hook
from .logger import MetricsWriter, ProgressBar, log_metrics, logger, setup_logging
from .optim import ModelEMA, build_lr_scheduler, build_optimizer


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def pick_device(name: Optional[str]) -> torch.device:
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: '{name}' requested but CUDA is not available; use device=cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


class Trainer:
    def __init__(self, cfg: Config, work_dir: str, resume: Any = None, load_from: Optional[str] = None,
                 seed: Optional[int] = None, deterministic: Optional[bool] = None, amp: Optional[str] = None):
        self.cfg = cfg
        self.work_dir = work_dir
        train = dict(cfg.get("train") or {})
        self.by_epoch = train.get("by", "epoch") == "epoch"
        if train.get("by", "epoch") not in ("epoch", "iter"):
            raise ConfigError(f"train.by: '{train.get('by')}' must be 'epoch' or 'iter'")
        self.max_epochs = int(train.get("max_epochs") or 0)
        self._max_iters_cfg = train.get("max_iters")
        if self.by_epoch and self.max_epochs <= 0:
            raise ConfigError("train.max_epochs must be > 0 when train.by is 'epoch'")
        if not self.by_epoch and not self._max_iters_cfg:
            raise ConfigError("train.max_iters must be set when train.by is 'iter'")
        self.val_interval = int(train.get("val_interval", 1))
        self.checkpoint_interval = int(train.get("checkpoint_interval", 1))
        self.keep_checkpoints = int(train.get("keep_checkpoints", 3))
        self.log_interval = int(train.get("log_interval", 20))
        self.accumulate = max(1, int(train.get("accumulate", 1)))
        self.grad_clip = train.get("grad_clip")
        self.amp = amp if amp is not None else train.get("amp")
        self.ema_decay = train.get("ema")
        self.sync_bn = bool(train.get("sync_bn", False))
        self.find_unused = bool(train.get("find_unused_parameters", False))
        self.save_best = bool(train.get("save_best", True))
        self.plot = bool(train.get("plot", True))
        ev = cfg.get("evaluation") or {}
        self.best_metric_name = ev.get("metric")
        self.rule = ev.get("rule", "greater")
        if self.rule not in ("greater", "less"):
            raise ConfigError(f"evaluation.rule: '{self.rule}' must be 'greater' or 'less'")
        self.seed = seed if seed is not None else (cfg.get("seed") or 0)
        self.deterministic = deterministic if deterministic is not None else bool(cfg.get("deterministic", False))
        self.resume_arg = resume if resume is not None else cfg.get("resume")
        self.load_from = load_from or cfg.get("load_from")

        self.device = pick_device(cfg.get("device"))
        self.distributed = dist.init_from_env(self.device.type)
        self.rank = dist.get_rank()
        if self.amp not in (None, "fp16", "bf16"):
            raise ConfigError(f"train.amp: '{self.amp}' must be fp16, bf16 or null")
        if self.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; on CPU use train.amp=bf16")
        setup_logging(work_dir, self.rank)
        seed_everything(self.seed + self.rank, self.deterministic)
        self.task = TASKS.get(cfg["task"])(cfg)
        self.epoch = 0          # completed epochs (loader passes)
        self.iter = 0           # completed iterations (batches)
        self.inner_iter = 0     # batches consumed in the current epoch
        self.best_score: Optional[float] = None
        self.timing: Dict[str, float] = {}
        self.progress = ProgressBar()
        self.hooks: List[Hook] = []
        self.val_loader = None

    # ---- building -------------------------------------------------------------------------------
    def _data_cfg(self) -> Dict[str, Any]:
        return dict(self.cfg.get("data") or {})

    def build_loader(self, split: str, train: bool):
        data = self._data_cfg()
        dataset = self.task.build_dataset(split)
        if len(dataset) == 0:
            raise ConfigError(f"data.{split}: the dataset is empty; check its root/ann_file paths")
        bs = int(data.get("batch_size", 8)) if train else int(data.get("val_batch_size") or data.get("batch_size", 8))
        return self.task.build_loader(dataset, train=train, batch_size=bs, num_workers=int(data.get("num_workers", 0)),
                                      seed=self.seed, pin_memory=bool(data.get("pin_memory", False)),
                                      persistent_workers=bool(data.get("persistent_workers", False)))

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.amp == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def setup_train(self) -> None:
        if dist.is_main():
            os.makedirs(self.work_dir, exist_ok=True)
            save_config(self.cfg, os.path.join(self.work_dir, "config.yaml"))
            for stale in glob.glob(os.path.join(self.ckpt_dir, ".*.tmp")):
                os.remove(stale)  # left by a run killed mid-write; never a checkpoint
        self.train_loader = self.build_loader("train", train=True)
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"data.batch_size={self._data_cfg().get('batch_size')} is larger than the training set "
                              f"({len(self.train_loader.dataset)} images per rank); lower it")
        self.max_iters = self.max_epochs * self.iters_per_epoch if self.by_epoch else int(self._max_iters_cfg)
        if not self.by_epoch:
            self.max_epochs = math.ceil(self.max_iters / self.iters_per_epoch)
        has_val = bool(self._data_cfg().get("val"))
        self.val_loader = self.build_loader("val", train=False) if has_val else None

        model = self.task.build_model()
        self.task.check_compatible(model, self.train_loader.dataset, "train")
        if self.load_from:
            load_weights(model, self.load_from)
        model.to(self.device)
        if self.distributed and self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.optimizer = build_optimizer(model, self.cfg.get("optimizer") or {"type": "SGD", "lr": 0.01})
        self.scheduler = build_lr_scheduler(self.optimizer, self.cfg.get("lr_schedule") or {}, self.max_iters,
                                            self.iters_per_epoch, self.by_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.ema = ModelEMA(model, float(self.ema_decay)) if self.ema_decay else None
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                        find_unused_parameters=self.find_unused)
        self.model = model
        self._maybe_resume()
        # records and TensorBoard events after the starting iteration belong to a run that was cut off
        self.metrics_writer = MetricsWriter(self.work_dir, self.iter) if dist.is_main() else None
        self._register_hooks()

    def _register_hooks(self) -> None:
        names = ["IterTimerHook", "LrSchedulerHook", "LoggerHook", "EvalHook", "CheckpointHook", "PlotHook"]
        hooks = [HOOKS.get(n)() for n in names]
        for i, h in enumerate(self.cfg.get("custom_hooks") or []):
            h = dict(h)
            priority = h.pop("priority", None)
            hook = HOOKS.build(h, key=f"custom_hooks.{i}")
            if priority is not None:
                hook.priority = priority
            hooks.append(hook)
        self.hooks = sorted(hooks, key=lambda h: h.priority)

    def call(self, event: str, *args) -> None:
        for h in self.hooks:
            getattr(h, event)(self, *args)

    # ---- checkpoints ----------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> str:
        return os.path.join(self.work_dir, "checkpoints")

    def state_dict(self) -> Dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema else None,
            "meta": {"epoch": self.epoch, "iter": self.iter, "inner_iter": self.inner_iter,
                     "best_score": self.best_score, "best_metric": self.best_metric_name,
                     "world_size": dist.get_world_size(), "torchcv": __version__, "torch": str(torch.__version__)},
            "rng": rng_state(),
            "config": self.cfg.dump(),
        }

    def save_checkpoint(self, name: str) -> None:
        state = self.state_dict()  # every rank reaches here; only rank 0 writes
        if not dist.is_main():
            return
        save_checkpoint(os.path.join(self.ckpt_dir, name), state)
        set_pointer(self.ckpt_dir, name)
        logger.info("saved checkpoint %s", os.path.join(self.ckpt_dir, name))
        for old in list_checkpoints(self.ckpt_dir)[:-self.keep_checkpoints] if self.keep_checkpoints > 0 else []:
            if os.path.basename(old) != name:
                os.remove(old)

    def save_best_checkpoint(self, metrics: Dict[str, float]) -> None:
        if not dist.is_main():
            return
        weights = (self.ema.module if self.ema else unwrap(self.model)).state_dict()
        save_checkpoint(os.path.join(self.ckpt_dir, "best.pth"),
                        {"model": weights, "meta": {"epoch": self.epoch, "iter": self.iter, **metrics},
                         "config": self.cfg.dump()})
        logger.info("new best %s = %.4f (saved best.pth)", self.best_metric_name, metrics[self.best_metric_name])

    def _resume_path(self) -> Optional[str]:
        r = self.resume_arg
        if not r:
            return None
        if r is True or r == "auto":
            path = find_resume_checkpoint(self.work_dir)
            if path is None:
                logger.warning("!" * 70 + "\n--resume: no usable checkpoint in %s/checkpoints: STARTING FROM SCRATCH\n"
                               + "!" * 70, self.work_dir)
            return path
        return str(r)

    def _maybe_resume(self) -> None:
        path = self._resume_path()
        if path is None:
            existing = list_checkpoints(self.ckpt_dir)
            if existing and not self.resume_arg:
                raise ConfigError(f"work dir {self.work_dir} already holds checkpoints of a run "
                                  f"({os.path.basename(existing[-1])}); starting over would mix two runs. "
                                  f"Continue it with --resume (run script: resume), pick another work dir / TAG, "
                                  f"or delete the folder.")
            return
        state = load_checkpoint(path)
        missing = [k for k in ("model", "optimizer", "scheduler", "meta", "rng") if k not in state]
        if missing:
            raise CheckpointError(f"{path} is a weights-only file (no {', '.join(missing)}); "
                                  f"use --load-from for weights, --resume only for training checkpoints")
        model = unwrap(self.model)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{path} was saved from a different model than the config builds: "
                                  f"{str(e).splitlines()[0]}... Resume with the config the run was started with.") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema and state.get("ema"):
            self.ema.module.load_state_dict(state["ema"])
        meta = state["meta"]
        self.epoch, self.iter, self.inner_iter = meta["epoch"], meta["iter"], meta["inner_iter"]
        self.best_score = meta.get("best_score")
        if meta.get("world_size", 1) == dist.get_world_size():
            set_rng_state(state["rng"])
        else:
            logger.warning("resuming with %d processes instead of %d: random streams are re-seeded",
                           dist.get_world_size(), meta.get("world_size"))
        self.scheduler.load_state_dict(state["scheduler"])
        self._report_config_changes(config_from_text(state.get("config", "")))
        logger.info("resumed from %s at epoch %d, iteration %d", path, self.epoch, self.iter)
        if self.iter >= self.max_iters:
            logger.warning("the checkpoint is already at iteration %d of %d: nothing left to train. "
                           "Raise train.max_epochs / train.max_iters to train longer.", self.iter, self.max_iters)

    def _report_config_changes(self, old: Dict[str, Any]) -> None:
        def flat(d, prefix=""):
            out = {}
            for k, v in (d or {}).items():
                if isinstance(v, dict):
                    out.update(flat(v, f"{prefix}{k}."))
                else:
                    out[f"{prefix}{k}"] = v
            return out
        a, b = flat(old), flat(dict(self.cfg))
        changed = [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        for k, x, y in changed:
            logger.warning("resume: %s changed: %r -> %r", k, x, y)

    # ---- the loop -------------------------------------------------------------------------------
    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _position_loader(self) -> None:
        loader = self.train_loader
        target = loader.batch_sampler if hasattr(loader.batch_sampler, "set_start") else loader.sampler
        if hasattr(target, "set_epoch"):
            target.set_epoch(self.epoch)
        if hasattr(target, "set_start"):
            per = 1 if target is loader.batch_sampler else loader.batch_size
            target.set_start(self.inner_iter * per)
        if loader.generator is not None:
            loader.generator.manual_seed(self.seed * 1000003 + self.epoch * 7919 + self.inner_iter)

    def train(self) -> Dict[str, float]:
        self.setup_train()
        self.last_metrics: Dict[str, float] = {}
        logger.info("training %s for %d %s (%d iterations, %d per epoch) on %s%s",
                    type(unwrap(self.model)).__name__, self.max_epochs if self.by_epoch else self.max_iters,
                    "epochs" if self.by_epoch else "iterations", self.max_iters, self.iters_per_epoch,
                    self.device, f" x{dist.get_world_size()} processes" if self.distributed else "")
        self.call("before_run")
        self.model.train()
        while self.iter < self.max_iters:
            self._position_loader()
            self.call("before_epoch")
            for batch in self.train_loader:
                self.call("before_iter")
                losses = self.run_step(batch)
                self.iter += 1
                self.inner_iter += 1
                self.call("after_iter", losses)
                if self.iter >= self.max_iters:
                    break
            if self.inner_iter >= self.iters_per_epoch:  # a complete pass (iteration mode may stop mid-pass)
                self.epoch += 1
                self.inner_iter = 0
                self.call("after_epoch")
        self.call("after_run")
        if self.metrics_writer:
            self.metrics_writer.close()
        return self.last_metrics

    def run_step(self, batch: Any) -> Dict[str, float]:
        batch = self.task.to_device(batch, self.device)
        last_micro = (self.iter + 1) % self.accumulate == 0 or self.iter + 1 == self.max_iters
        sync = contextlib.nullcontext() if (last_micro or not self.distributed) else self.model.no_sync()
        with sync:
            with self.autocast():
                losses = self.task.train_step(self.model, batch)
            if not isinstance(losses, dict) or not losses:
                raise TypeError(f"{type(unwrap(self.model)).__name__} must return a dict of loss tensors in train "
                                f"mode, got {type(losses).__name__}")
            total = sum(losses.values())
            values = {k: float(v.detach()) for k, v in losses.items()}
            if not math.isfinite(float(total.detach())):
                last = os.path.join(self.ckpt_dir, "last_checkpoint")
                raise FloatingPointError(
                    f"non-finite loss at iteration {self.iter + 1} (epoch {self.epoch + 1}): "
                    + ", ".join(f"{k}={v}" for k, v in values.items())
                    + f". Training stopped; the last good checkpoint is named in {last}. "
                      f"Try a lower optimizer.lr, train.grad_clip, or check the data.")
            self.scaler.scale(total / self.accumulate).backward()
        if last_micro:
            if self.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.grad_clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema:
                self.ema.update(unwrap(self.model))
        return values

    # ---- evaluation -----------------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else unwrap(self.model)

    def is_better(self, metrics: Dict[str, float]) -> bool:
        name = self.best_metric_name
        if not name:
            return False
        if name not in metrics:
            raise ConfigError(f"evaluation.metric: '{name}' is not among the computed metrics "
                              f"({', '.join(k for k in metrics if '/' not in k)})")
        score = metrics[name]
        better = self.best_score is None or (score > self.best_score if self.rule == "greater" else score < self.best_score)
        if better:
            self.best_score = score
        return better

    def validate(self) -> Dict[str, float]:
        self.progress.clear()
        metrics = self.task.evaluate(self.eval_model(), self.val_loader, self.device, "val",
                                     autocast=self.autocast if self.amp else None,
                                     vis_dir=os.path.join(self.work_dir, "plots") if self.plot else None)
        self.model.train()
        if dist.is_main():
            log_metrics(metrics, f"validation at epoch {self.epoch}, iteration {self.iter}")
            self.metrics_writer.write({"mode": "val", "epoch": self.epoch, "iter": self.iter, **metrics}, self.iter, "val")
        self.last_metrics = metrics
        self.call("after_val", metrics)
        return metrics

    # ---- test -----------------------------------------------------------------------------------
    def test(self, checkpoint: str, split: str = "test", out_dir: Optional[str] = None) -> Dict[str, float]:
        loader = self.build_loader(split, train=False)
        model = self.task.build_model()
        self.task.check_compatible(model, loader.dataset, split)
        report = load_weights(model, checkpoint)
        if report["missing"] or report["mismatched"]:
            raise CheckpointError(f"{checkpoint} does not hold every weight of this model "
                                  f"(missing {len(report['missing'])}, mismatched {len(report['mismatched'])}: "
                                  f"{(report['missing'] + report['mismatched'])[:3]}). Is it from another config?")
        model.to(self.device)
        t0 = time.perf_counter()
        metrics = self.task.evaluate(model, loader, self.device, split, out_dir=out_dir,
                                     autocast=self.autocast if self.amp else None)
        elapsed = time.perf_counter() - t0
        if dist.is_main():
            log_metrics(metrics, f"{split} results for {checkpoint} ({len(loader.dataset)} images, {elapsed:.1f}s)")
            path = os.path.join(out_dir or self.work_dir, f"metrics_{split}.json")
            atomic_write_text(path, json.dumps({"checkpoint": checkpoint, "split": split, **metrics}, indent=1))
            logger.info("metrics written to %s", path)
        return metrics
