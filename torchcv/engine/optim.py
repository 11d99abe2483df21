"""Optimizers by name from torch.optim (with param-group options) and per-iteration LR schedules."""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..registry import ConfigError, check_arguments, did_you_mean

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm,
              nn.LocalResponseNorm)


def build_optimizer(model: nn.Module, cfg: Dict[str, Any]) -> torch.optim.Optimizer:
    """``cfg``: ``type`` (any torch.optim class), its arguments, plus

    - ``norm_decay`` / ``bias_decay``: weight decay for norm-layer parameters / biases (e.g. 0.0),
    - ``paramwise``: list of ``{pattern: regex on the parameter name, lr_mult, decay_mult}``.
    """
    cfg = dict(cfg)
    name = cfg.pop("type", None)
    if not name or not hasattr(torch.optim, name) or not isinstance(getattr(torch.optim, name), type):
        names = [n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                 and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)]
        raise ConfigError(f"optimizer.type: '{name}' is not a torch.optim optimizer.{did_you_mean(str(name), names)}")
    norm_decay = cfg.pop("norm_decay", None)
    bias_decay = cfg.pop("bias_decay", None)
    rules = cfg.pop("paramwise", None) or []
    cls = getattr(torch.optim, name)
    check_arguments(cls, {"params": None, **cfg}, f"optimizer ({name})")
    base_lr = cfg.get("lr", 1e-3)
    base_wd = cfg.get("weight_decay", 0.0)

    norm_params = set()
    for m in model.modules():
        if isinstance(m, NORM_TYPES):
            norm_params.update(id(p) for p in m.parameters(recurse=False))
    groups: Dict[tuple, Dict[str, Any]] = {}
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr, wd = base_lr, base_wd
        if id(p) in norm_params and norm_decay is not None:
            wd = norm_decay
        elif pname.endswith("bias") and bias_decay is not None:
            wd = bias_decay
        for rule in rules:
            if re.search(rule["pattern"], pname):
                lr = lr * rule.get("lr_mult", 1.0)
                wd = wd * rule.get("decay_mult", 1.0)
        groups.setdefault((lr, wd), {"params": [], "lr": lr, "weight_decay": wd})["params"].append(p)
    if not groups:
        raise ConfigError("optimizer: the model has no trainable parameters (all frozen?)")
    return cls(list(groups.values()), **cfg)


class LRScheduler:
    """Per-iteration schedule: linear/constant warmup, then step / multistep / cosine / poly / constant.

    ``milestones``/``step_size`` are in epochs when training by epoch, in iterations otherwise. The
    schedule is a pure function of the iteration, so resuming (even with a longer run) just needs
    the iteration number; ``base_lr`` of each group is kept in ``group['initial_lr']``.
    """

    POLICIES = ("constant", "step", "multistep", "cosine", "poly")

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int, iters_per_epoch: int,
                 by_epoch: bool, policy: str = "cosine", warmup_iters: int = 0, warmup_ratio: float = 0.001,
                 warmup: str = "linear", milestones: Optional[Sequence[int]] = None, step_size: Optional[int] = None,
                 gamma: float = 0.1, power: float = 0.9, min_lr_ratio: float = 0.0, warmup_epochs: int = 0):
        if policy not in self.POLICIES:
            raise ConfigError(f"lr_schedule.policy: '{policy}' is unknown.{did_you_mean(policy, self.POLICIES)} "
                              f"Choose one of {', '.join(self.POLICIES)}")
        if warmup not in ("linear", "constant"):
            raise ConfigError(f"lr_schedule.warmup: '{warmup}' must be 'linear' or 'constant'")
        unit = iters_per_epoch if by_epoch else 1
        self.optimizer = optimizer
        self.total = max(1, total_iters)
        self.policy = policy
        self.warmup_iters = warmup_iters + warmup_epochs * iters_per_epoch
        self.warmup_ratio = warmup_ratio
        self.warmup = warmup
        self.milestones = sorted(int(m * unit) for m in (milestones or []))
        self.step_size = int(step_size * unit) if step_size else None
        if policy == "multistep" and not self.milestones:
            raise ConfigError("lr_schedule: policy 'multistep' needs 'milestones' (a list)")
        if policy == "step" and not self.step_size:
            raise ConfigError("lr_schedule: policy 'step' needs 'step_size'")
        self.gamma, self.power, self.min_lr_ratio = gamma, power, min_lr_ratio
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.last_iter = 0
        self.step(0)

    def factor(self, it: int) -> float:
        p = self.policy
        if p == "constant":
            f = 1.0
        elif p == "step":
            f = self.gamma ** (it // self.step_size)
        elif p == "multistep":
            f = self.gamma ** sum(1 for m in self.milestones if it >= m)
        elif p == "cosine":
            f = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(it, self.total) / self.total))
        else:  # poly
            f = self.min_lr_ratio + (1 - self.min_lr_ratio) * (1 - min(it, self.total) / self.total) ** self.power
        if it < self.warmup_iters:
            if self.warmup == "constant":
                f *= self.warmup_ratio
            else:
                f *= self.warmup_ratio + (1 - self.warmup_ratio) * it / self.warmup_iters
        return f

    def step(self, it: int) -> None:
        self.last_iter = it
        f = self.factor(it)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def get_lr(self) -> List[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"last_iter": self.last_iter, "total": self.total, "policy": self.policy}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.step(int(state["last_iter"]))


def build_lr_scheduler(optimizer, cfg: Dict[str, Any], total_iters: int, iters_per_epoch: int,
                       by_epoch: bool) -> LRScheduler:
    cfg = dict(cfg or {})
    check_arguments(LRScheduler, {"optimizer": 0, "total_iters": 0, "iters_per_epoch": 0, "by_epoch": 0, **cfg},
                    "lr_schedule")
    return LRScheduler(optimizer, total_iters, iters_per_epoch, by_epoch, **cfg)


class ModelEMA:
    """Exponential moving average of weights (buffers copied); evaluation can use it."""

    def __init__(self, model: nn.Module, decay: float):
        import copy
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        own = self.module.state_dict()
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                own[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                own[k].copy_(v)
