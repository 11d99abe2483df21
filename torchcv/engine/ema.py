"""Exponential moving average of a model's weights, optionally of one sub-module only.

``train.ema: 0.9998`` averages the whole model; ``train.ema: {decay: 0.999, module: generator}``
averages only ``generator`` (a GAN's discriminator is not worth averaging). Evaluation then runs on
``ModelEMA.module``: a copy of the model whose averaged part holds the average and whose other
parts are kept equal to the live model. Floating-point buffers (BatchNorm statistics) are averaged
like parameters; integer buffers are copied.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Union

import torch
from torch import nn

from ..registry import ConfigError


def parse_ema_cfg(value: Union[None, float, Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if value is None:
        return None
    cfg = {"decay": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(cfg, dict) or set(cfg) - {"decay", "module"} or "decay" not in cfg:
        raise ConfigError(f"train.ema: {value!r} must be a decay (e.g. 0.9998) or {{decay: 0.999, module: name}}")
    decay = cfg["decay"]
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
        raise ConfigError(f"train.ema decay={decay!r}: must be a number in (0, 1), e.g. 0.9998")
    if cfg.get("module") is not None and not isinstance(cfg["module"], str):
        raise ConfigError(f"train.ema.module={cfg['module']!r}: must be the name of a sub-module")
    return {"decay": float(decay), "module": cfg.get("module")}


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float, module: Optional[str] = None):
        self.decay = decay
        self.prefix = module
        if module is not None:
            names = {n for n, _ in model.named_modules() if n}
            if module not in names:
                from ..registry import did_you_mean
                raise ConfigError(f"train.ema.module: '{module}' is not a sub-module of the model."
                                  f"{did_you_mean(module, names)}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def _averaged(self, key: str) -> bool:
        return self.prefix is None or key.startswith(self.prefix + ".")

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        own = self.module.state_dict()
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point and self._averaged(k):
                own[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                own[k].copy_(v)

    @torch.no_grad()
    def sync_rest(self, model: nn.Module) -> None:
        """Copy the parts that are not averaged from the live model (before evaluation)."""
        if self.prefix is None:
            return
        own = self.module.state_dict()
        for k, v in model.state_dict().items():
            if not self._averaged(k):
                own[k].copy_(v)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
