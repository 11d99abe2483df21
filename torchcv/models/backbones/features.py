"""Multi-scale feature maps from any registered classification network.

``FeatureBackbone`` lays the network out as a flat sequence of its top-level children (a
``features`` / ``layers`` Sequential is opened up, auxiliary heads are dropped), probes once which
child halves the resolution, and returns the output of the last child of each stride level.
Modules keep their torchvision names (``layer1``, ``0``, ``1`` ...) under ``body``, so state_dict
keys look like torchvision's detection backbones (``body.layer1.0.conv1.weight``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from torchvision.ops import misc as tv_misc

from ...registry import ARCHS, BACKBONES, ConfigError

_OPEN = ("features", "layers")             # Sequential containers whose children are the stages
_SKIP_PREFIX = ("aux", "AuxLogits")


class FrozenBatchNorm2d(tv_misc.FrozenBatchNorm2d):
    """BatchNorm with fixed statistics and affine parameters (detection fine-tuning default)."""


def _flatten(net: nn.Module) -> "OrderedDict[str, nn.Module]":
    out: "OrderedDict[str, nn.Module]" = OrderedDict()
    for name, child in net.named_children():
        if name.startswith(_SKIP_PREFIX):
            continue
        if name in ("avgpool", "classifier", "fc", "dropout"):
            break
        if name in _OPEN and isinstance(child, nn.Sequential):
            for sub_name, sub in child.named_children():
                out[sub_name] = sub
        else:
            out[name] = child
    return out


def _freeze_bn(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by FrozenBatchNorm2d holding the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_bn(child)
    return module


@torch.no_grad()
def _probe(body: nn.ModuleDict, size: int, ends: Optional[List[str]] = None):
    """Names of the last child at each resolution (a new level starts when the map about halves),
    with channels and strides; with ``ends`` given, only measure channels/strides at those names."""
    was_training = body.training
    body.eval()
    x = torch.zeros(1, 3, size, size)
    names, chans, strides, level = [], [], [], size
    for name, m in body.items():
        x = m(x)
        stride = round(size / x.shape[-1])
        if ends is not None:
            if name in ends:
                names.append(name), chans.append(x.shape[1]), strides.append(stride)
        elif x.shape[-1] * 1.5 <= level:  # about halved: a new level (unpadded convs shave a few pixels)
            names.append(name), chans.append(x.shape[1]), strides.append(stride)
            level = x.shape[-1]
        elif names:
            names[-1], chans[-1] = name, x.shape[1]
    body.train(was_training)
    return names, chans, strides


@BACKBONES.register()
class FeatureBackbone(nn.Module):
    """Args:
        arch: a registered classification architecture (``python tools/list_models.py backbones``).
        out_indices: which stride levels to return, 0 = the first level after the stem's first
            downsampling (stride 2), so for ResNet ``(1, 2, 3, 4)`` are C2..C5 (strides 4..32).
        pretrained: local path to torchvision-format classification weights.
        frozen_stages: levels ``0..frozen_stages`` get ``requires_grad=False`` (-1 freezes nothing).
        norm: ``bn`` (trainable BatchNorm), ``frozen_bn`` (FrozenBatchNorm2d) or ``sync_bn``.
        arch_kwargs: extra torchvision constructor arguments (e.g. ``replace_stride_with_dilation``).
    """

    def __init__(self, arch: str, out_indices: Sequence[int] = (1, 2, 3, 4), pretrained: Optional[str] = None,
                 frozen_stages: int = -1, norm: str = "bn", arch_kwargs: Optional[dict] = None,
                 probe_size: int = 224):
        super().__init__()
        if arch not in ARCHS:  # any registered architecture: torchvision's and ours (dfnet_v1, ...)
            from ...registry import did_you_mean
            raise ConfigError(f"FeatureBackbone.arch: '{arch}' is not a known architecture.{did_you_mean(arch, ARCHS.names())}")
        if norm not in ("bn", "frozen_bn", "sync_bn"):
            raise ConfigError(f"FeatureBackbone.norm: '{norm}' must be one of bn, frozen_bn, sync_bn")
        kwargs = dict(arch_kwargs or {})
        if arch in ("inception_v3", "googlenet"):
            kwargs.update(aux_logits=False, init_weights=True)
        net = ARCHS.get(arch)(num_classes=1000, pretrained=pretrained, **kwargs)
        self.body = nn.ModuleDict(_flatten(net))
        if kwargs.get("replace_stride_with_dilation"):
            # levels are named by the undilated layout (layer3 stays level 3 at stride 16 -> 8)
            plain = {k: v for k, v in kwargs.items() if k != "replace_stride_with_dilation"}
            self.stage_ends, _, _ = _probe(nn.ModuleDict(_flatten(ARCHS.get(arch)(num_classes=1000, **plain))),
                                           probe_size)
            _, self.channels, self.strides = _probe(self.body, probe_size, self.stage_ends)
        else:
            self.stage_ends, self.channels, self.strides = _probe(self.body, probe_size)
        bad = [i for i in out_indices if not 0 <= i < len(self.stage_ends)]
        if bad:
            raise ConfigError(f"FeatureBackbone.out_indices {list(out_indices)}: {arch} has levels "
                              f"0..{len(self.stage_ends) - 1} (strides {self.strides})")
        self.out_indices = list(out_indices)
        self.out_channels: List[int] = [self.channels[i] for i in self.out_indices]
        self.out_strides: List[int] = [self.strides[i] for i in self.out_indices]
        # drop children after the last requested level: they would be computed for nothing
        last = self.stage_ends[max(self.out_indices)]
        names = list(self.body.keys())
        for n in names[names.index(last) + 1:]:
            del self.body[n]
        if norm == "frozen_bn":
            _freeze_bn(self.body)
        elif norm == "sync_bn":
            self.body = nn.SyncBatchNorm.convert_sync_batchnorm(self.body)
        self._freeze(frozen_stages)

    def _freeze(self, frozen_stages: int) -> None:
        if frozen_stages < 0:
            return
        last = self.stage_ends[min(frozen_stages, len(self.stage_ends) - 1)]
        for name, m in self.body.items():
            for p in m.parameters():
                p.requires_grad_(False)
            if name == last:
                break

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = OrderedDict()
        wanted = {self.stage_ends[i]: str(i) for i in self.out_indices}
        for name, m in self.body.items():
            x = m(x)
            if name in wanted:
                out[wanted[name]] = x
        return out
