"""The generic trainer: runs epochs or iterations with hooks around each step, validates,
checkpoints, resumes and tests. It never knows the task: the Task builds the model and the data
loaders and runs one training iteration (``Task.train_step(model, batch, optims)``); the trainer
keeps autocast, the non-finite check, iteration counting, hooks and EMA.

The trainer owns the config keys of ``Trainer.schema()`` (``train``, ``optimizer``,
``lr_schedule``, hooks, seeds, paths); the task owns ``model``, ``data`` and ``evaluation``.
"""
from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import time
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from .. import __version__
from ..config import Config, Key, config_from_text, save_config
from ..registry import HOOKS, TASKS, ConfigError
from ..utils import dist
from ..utils.errors import CheckpointError, NonFiniteLossError
from ..utils.rng import derive_seed, isolated_rng, rng_state, seed_everything, set_rng_state
from ..utils.weights import load_checkpoint, load_weights, unwrap
from ..utils.fileio import atomic_write_text
from .checkpoint import (FORMAT, find_resume_checkpoint, list_checkpoints, missing_training_keys, save_checkpoint,
                         set_pointer, upgrade_checkpoint)
from .ema import ModelEMA, parse_ema_cfg
from .hooks import EVENTS, Hook
from .logger import MetricsWriter, ProgressBar, log_metrics, logger, setup_logging
from .optim import OptimWrappers, build_optim_wrappers, named_optimizer_cfgs
from .storage import Storage

# built-in hooks by their name in ``default_hooks``
DEFAULT_HOOKS = {"timer": "IterTimerHook", "lr_scheduler": "LrSchedulerHook", "logger": "LoggerHook",
                 "eval": "EvalHook", "checkpoint": "CheckpointHook", "plot": "PlotHook"}

SCHEMA = {
    "seed": Key(int, 0, min=0, doc="base seed of every random stream"),
    "deterministic": Key(bool, False),
    "device": Key((str, None), None, doc="null: cuda when available, else cpu"),
    "work_dir": Key((str, None), None),
    "load_from": Key((str, None), None, doc="weights-only initialisation"),
    "resume": Key((bool, str, None), None, doc="a checkpoint path, or true/auto for the newest in the work dir"),
    "custom_imports": Key(list, [], doc="modules to import so their parts register"),
    "custom_hooks": Key(list, []),
    "default_hooks": Key(dict, {}, free=True, doc="name -> null (disable) or {type: ...} (replace)"),
    "meta": Key((dict, None), None, free=True, doc="free-form notes, saved with the config"),
    "optimizer": Key(dict, {"type": "SGD", "lr": 0.01}, free=True),
    "lr_schedule": Key(dict, {}, free=True),
    "train": {
        "by": Key(str, "epoch", choices=("epoch", "iter")),
        "max_epochs": Key((int, None), 12, min=1),
        "max_iters": Key((int, None), None, min=1, doc="required when train.by is iter"),
        "val_interval": Key(int, 1, min=1, doc="epochs (by: epoch) or iterations (by: iter)"),
        "checkpoint_interval": Key(int, 1, min=1),
        "keep_checkpoints": Key(int, 3, min=0, doc="epoch_N/iter_N files kept (0: all); best.pth apart"),
        "log_interval": Key(int, 20, min=1),
        "amp": Key((str, None), None, choices=("fp16", "bf16", None), doc="bf16 (CPU or CUDA) or fp16 (CUDA)"),
        "grad_clip": Key((float, None), None, above=0, doc="max gradient norm (per optimizer)"),
        "accumulate": Key(int, 1, min=1, doc="gradient accumulation steps"),
        "ema": Key((float, dict, None), None, free=True, doc="decay, or {decay, module}"),
        "sync_bn": Key(bool, False),
        "find_unused_parameters": Key(bool, False),
        "save_best": Key(bool, True),
        "plot": Key(bool, True),
    },
}


def pick_device(name: Optional[str]) -> torch.device:
    if name:
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"device: '{name}' is not a device; use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: '{name}' requested but CUDA is not available; use device=cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


class Trainer:
    @staticmethod
    def schema() -> Dict[str, Any]:
        return SCHEMA

    def __init__(self, cfg: Config, work_dir: str, resume: Any = None, load_from: Optional[str] = None,
                 seed: Optional[int] = None, deterministic: Optional[bool] = None, amp: Optional[str] = None):
        self.cfg = cfg
        self.work_dir = work_dir
        train = cfg["train"]
        self.by_epoch = train["by"] == "epoch"
        self.max_epochs = int(train["max_epochs"] or 0)
        self._max_iters_cfg = train["max_iters"]
        if self.by_epoch and self.max_epochs <= 0:
            raise ConfigError("train.max_epochs must be set (>= 1) when train.by is 'epoch'")
        if not self.by_epoch and not self._max_iters_cfg:
            raise ConfigError("train.max_iters must be set when train.by is 'iter'")
        self.val_interval = train["val_interval"]
        self.checkpoint_interval = train["checkpoint_interval"]
        self.keep_checkpoints = train["keep_checkpoints"]
        self.log_interval = train["log_interval"]
        self.accumulate = train["accumulate"]
        self.grad_clip = train["grad_clip"]
        self.amp = amp if amp is not None else train["amp"]
        self.ema_cfg = parse_ema_cfg(train["ema"])
        self.sync_bn = train["sync_bn"]
        self.find_unused = train["find_unused_parameters"]
        self.save_best = train["save_best"]
        self.plot = train["plot"]
        ev = cfg.get("evaluation") or {}
        self.best_metric_name = ev.get("metric")
        self.rule = ev.get("rule", "greater")
        self.seed = seed if seed is not None else cfg["seed"]
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed}: must be >= 0")
        self.deterministic = deterministic if deterministic is not None else cfg["deterministic"]
        self.resume_arg = resume if resume is not None else cfg["resume"]
        self.load_from = load_from or cfg["load_from"]
        # validated now, so a wrong optimizer value fails before any data is read
        self.optim_cfgs = named_optimizer_cfgs(cfg["optimizer"], cfg["lr_schedule"])

        self.device = pick_device(cfg["device"])
        if self.amp not in (None, "fp16", "bf16"):
            raise ConfigError(f"train.amp: '{self.amp}' must be fp16, bf16 or null")
        if self.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; on CPU use train.amp=bf16")
        self.distributed = dist.init_from_env(self.device.type)
        self.rank = dist.get_rank()
        setup_logging(work_dir, self.rank)
        seed_everything(self.seed + self.rank, self.deterministic)
        self.task = TASKS.get(cfg["task"])(cfg)
        self.epoch = 0          # completed epochs (loader passes)
        self.iter = 0           # completed iterations (batches)
        self.inner_iter = 0     # batches consumed in the current epoch
        self.storage = Storage()
        self.progress = ProgressBar()
        self.hooks: List[Hook] = []
        self.hook_keys: List[str] = []
        self.val_loader = None
        self.ema: Optional[ModelEMA] = None

    # ---- building -------------------------------------------------------------------------------
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
        self.train_loader = self.task.build_train_loader(seed=self.seed)
        sampler = self.train_loader.batch_sampler
        if not (hasattr(sampler, "set_epoch") and hasattr(sampler, "set_start")):
            raise TypeError(f"{type(self.task).__name__}.build_train_loader must give a DataLoader whose "
                            f"batch_sampler follows the resumable protocol (torchcv.data.samplers)")
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"data.batch_size={self.cfg['data'].get('batch_size')} is larger than the training "
                              f"set ({len(self.train_loader.dataset)} samples per process); lower it")
        self.max_iters = self.max_epochs * self.iters_per_epoch if self.by_epoch else int(self._max_iters_cfg)
        if not self.by_epoch:
            self.max_epochs = math.ceil(self.max_iters / self.iters_per_epoch)
        self.val_loader = self.task.build_eval_loader("val", seed=self.seed) if self.task.has_split("val") else None

        model = self.task.build_model()
        self.task.check_compatible(model, self.train_loader.dataset, "train")
        if self.load_from:
            load_weights(model, self.load_from)
        model.to(self.device)
        if self.distributed and self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.optims: OptimWrappers = build_optim_wrappers(
            model, self.optim_cfgs, scaler, self.max_iters, self.iters_per_epoch, self.by_epoch,
            grad_clip=self.grad_clip, accumulate=self.accumulate, device_type=self.device.type)
        if self.ema_cfg:
            self.ema = ModelEMA(model, self.ema_cfg["decay"], self.ema_cfg["module"])
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                        find_unused_parameters=self.find_unused)
        for optim in self.optims.values():
            optim.ddp_model = model if self.distributed else None
            optim.on_after_backward = self._after_backward
        self.model = model
        self._build_hooks()
        self._maybe_resume()
        # records and TensorBoard events after the starting iteration belong to a run that was cut off
        self.metrics_writer = MetricsWriter(self.work_dir, self.iter) if dist.is_main() else None

    def _build_hooks(self) -> None:
        overrides = dict(self.cfg.get("default_hooks") or {})
        unknown = set(overrides) - set(DEFAULT_HOOKS)
        if unknown:
            from ..registry import did_you_mean
            bad = sorted(unknown)[0]
            raise ConfigError(f"default_hooks.{bad}: no built-in hook of that name.{did_you_mean(bad, DEFAULT_HOOKS)} "
                              f"Built-in hooks: {', '.join(DEFAULT_HOOKS)}")
        entries = []
        for name, cls_name in DEFAULT_HOOKS.items():
            spec = overrides.get(name, {"type": cls_name})
            if spec is None:
                continue  # disabled
            entries.append((name, spec, f"default_hooks.{name}"))
        seen: Dict[str, int] = {}
        for i, spec in enumerate(self.cfg.get("custom_hooks") or []):
            if not isinstance(spec, dict) or "type" not in spec:
                raise ConfigError(f"custom_hooks.{i}: expected {{type: HookName, ...}}, got {spec!r}")
            base = str(spec["type"])
            seen[base] = seen.get(base, 0) + 1
            entries.append((base if seen[base] == 1 else f"{base}_{seen[base]}", spec, f"custom_hooks.{i}"))
        built = []
        for name, spec, where in entries:
            if not isinstance(spec, dict) or "type" not in spec:
                raise ConfigError(f"{where}: expected null (disable) or {{type: HookName, ...}}, got {spec!r}")
            spec = dict(spec)
            priority = spec.pop("priority", None)
            hook = HOOKS.build(spec, key=where)
            if not isinstance(hook, Hook):
                raise ConfigError(f"{where}: {spec['type']} is not a Hook (subclass torchcv.engine.hooks.Hook)")
            if priority is not None:
                hook.priority = priority
            built.append((name, hook))
        built.sort(key=lambda nh: nh[1].priority)  # stable: equal priorities keep config order
        self.hook_keys = [n for n, _ in built]
        self.hooks = [h for _, h in built]

    def call(self, event: str, *args) -> None:
        for h in self.hooks:
            getattr(h, event)(self, *args)

    def _after_backward(self, optim) -> None:
        self.call("after_backward", optim)

    # ---- checkpoints ----------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> str:
        return os.path.join(self.work_dir, "checkpoints")

    def state_dict(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "model": unwrap(self.model).state_dict(),
            "optimizers": self.optims.state_dict(),
            "scaler": self.optims.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "task": self.task.state_dict(),
            "hooks": {k: h.state_dict() for k, h in zip(self.hook_keys, self.hooks)},
            "meta": {"epoch": self.epoch, "iter": self.iter, "inner_iter": self.inner_iter,
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
        state = upgrade_checkpoint(load_checkpoint(path), path)
        missing = missing_training_keys(state)
        if missing:
            raise CheckpointError(f"{path} is a weights-only file (no {', '.join(missing)}); "
                                  f"use --load-from for weights, --resume only for training checkpoints")
        model = unwrap(self.model)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{path} was saved from a different model than the config builds: "
                                  f"{str(e).splitlines()[0]}... Resume with the config the run was started with.") from None
        try:
            self.optims.load_state_dict(state["optimizers"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: {e}. Resume with the optimizer section the run was started with.") from None
        if state.get("scaler"):
            self.optims.scaler.load_state_dict(state["scaler"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.task.load_state_dict(state.get("task") or {})
        saved_hooks = state.get("hooks") or {}
        for key, hook in zip(self.hook_keys, self.hooks):
            if key in saved_hooks:
                hook.load_state_dict(saved_hooks[key])
        meta = state["meta"]
        self.epoch, self.iter, self.inner_iter = meta["epoch"], meta["iter"], meta["inner_iter"]
        if meta.get("world_size", 1) == dist.get_world_size():
            set_rng_state(state["rng"])
        else:
            logger.warning("resuming with %d processes instead of %d: random streams are re-seeded",
                           dist.get_world_size(), meta.get("world_size"))
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
        return next(iter(self.optims.values())).lr

    def _position_loader(self) -> None:
        """Point the resumable batch sampler at this epoch's order and skip what was consumed."""
        loader = self.train_loader
        loader.batch_sampler.set_epoch(self.epoch)
        loader.batch_sampler.set_start(self.inner_iter)
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
                self.storage.clear()
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

    def _non_finite(self, losses: Dict[str, float], optimizer: Optional[str] = None,
                    before_step: bool = False) -> NonFiniteLossError:
        last = os.path.join(self.ckpt_dir, "last_checkpoint")
        where = f" (optimizer '{optimizer}')" if optimizer and len(self.optims) > 1 else ""
        return NonFiniteLossError(
            f"non-finite loss at iteration {self.iter + 1} (epoch {self.epoch + 1}){where}: "
            + ", ".join(f"{k}={v}" for k, v in losses.items())
            + f". Training stopped{' before the step' if before_step else ''}; the last good checkpoint is named "
              f"in {last}. Try a lower optimizer.lr, train.grad_clip, or check the data.")

    def run_step(self, batch: Any) -> Dict[str, float]:
        batch = self.task.to_device(batch, self.device)
        self.optims.begin_iter(final=self.iter + 1 == self.max_iters)
        try:
            with self.autocast():
                losses = self.task.train_step(self.model, batch, self.optims)
        except NonFiniteLossError as e:
            if not hasattr(e, "losses"):
                raise
            raise self._non_finite(e.losses, getattr(e, "optimizer", None), before_step=True) from None
        if not isinstance(losses, dict) or not losses:
            raise TypeError(f"{type(self.task).__name__}.train_step must return a dict of named losses, "
                            f"got {type(losses).__name__}")
        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise self._non_finite(values)
        stepped = self.optims.end_iter()
        for name, optim in self.optims.items():
            if optim.stepped and optim.last_grad_norm is not None:
                self.storage.put(f"grad_norm/{name}", optim.last_grad_norm)
        if self.ema and stepped:
            self.ema.update(unwrap(self.model))
        self.storage.update(values)
        return values

    # ---- evaluation -----------------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        if self.ema:
            self.ema.sync_rest(unwrap(self.model))
            return self.ema.module
        return unwrap(self.model)

    def _evaluate(self, model: nn.Module, loader, split: str, **kwargs) -> Dict[str, float]:
        """Evaluation on its own random streams: it neither draws from nor disturbs the training's,
        so how often a run validates never changes what it trains."""
        if loader.generator is not None:
            loader.generator.manual_seed(derive_seed(self.seed, 17))
        with isolated_rng(derive_seed(self.seed, 23, self.rank)):
            return self.task.evaluate(model, loader, self.device, split,
                                      autocast=self.autocast if self.amp else None, **kwargs)

    def validate(self) -> Dict[str, float]:
        self.progress.clear()
        metrics = self._evaluate(self.eval_model(), self.val_loader, "val",
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
        if not self.task.has_split(split):
            raise ConfigError(f"data.{split} is not set in the config: add a dataset section for the {split} split")
        loader = self.task.build_eval_loader(split, seed=self.seed)
        model = self.task.build_model()
        self.task.check_compatible(model, loader.dataset, split)
        report = load_weights(model, checkpoint)
        if report["missing"] or report["mismatched"]:
            raise CheckpointError(f"{checkpoint} does not hold every weight of this model "
                                  f"(missing {len(report['missing'])}, mismatched {len(report['mismatched'])}: "
                                  f"{(report['missing'] + report['mismatched'])[:3]}). Is it from another config?")
        model.to(self.device)
        t0 = time.perf_counter()
        metrics = self._evaluate(model, loader, split, out_dir=out_dir)
        elapsed = time.perf_counter() - t0
        if dist.is_main():
            log_metrics(metrics, f"{split} results for {checkpoint} ({len(loader.dataset)} samples, {elapsed:.1f}s)")
            path = os.path.join(out_dir or self.work_dir, f"metrics_{split}.json")
            atomic_write_text(path, json.dumps({"checkpoint": checkpoint, "split": split, **metrics}, indent=1))
            logger.info("metrics written to %s", path)
        return metrics


assert set(EVENTS) <= set(dir(Hook))
