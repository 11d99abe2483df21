"""One feature extractor for every task: intermediate feature maps of any registered network.

``FeatureBackbone`` lays the network out as a flat sequence of its top-level children (a
``features`` / ``layers`` Sequential is opened up, auxiliary heads are dropped), probes once which
child halves the resolution (the *levels*: level 0 ends at the first stride-2 child, so for a
ResNet levels 1..4 are layer1..layer4 = C2..C5), and returns the outputs it *taps*:

- by level: ``out_indices: [2, 3, 4]`` taps the last child of each level, keys "2", "3", "4";
- by child name: ``return_layers: {"4": low, "16": high}`` (or a list: keys "0", "1", ...), for
  models that read a block in the middle of a stage (torchvision's MobileNetV3 segmentation and
  detection models).

Modules keep their torchvision names under ``body`` (``body.layer1.0.conv1.weight``), so state_dict
keys look like torchvision's detection backbones. ``output_stride`` 8/16 dilates the last stages
instead of striding them (ResNets with bottlenecks; MobileNetV3 supports 16); levels keep the names
of the undilated layout.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn
from torchvision.ops import misc as tv_misc

from ...registry import ARCHS, BACKBONES, ConfigError, did_you_mean

_OPEN = ("features", "layers")             # Sequential containers whose children are the stages
_SKIP_PREFIX = ("aux", "AuxLogits")
_HEAD_NAMES = ("avgpool", "classifier", "fc", "dropout")


class FrozenBatchNorm2d(tv_misc.FrozenBatchNorm2d):
    """BatchNorm with fixed statistics and affine parameters (detection fine-tuning default)."""


def _flatten(net: nn.Module) -> "OrderedDict[str, nn.Module]":
    out: "OrderedDict[str, nn.Module]" = OrderedDict()
    for name, child in net.named_children():
        if name.startswith(_SKIP_PREFIX):
            continue
        if name in _HEAD_NAMES:
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
def _level_ends(body: nn.ModuleDict, size: int) -> List[str]:
    """Names of the last child at each resolution level (a new level starts when the map about halves)."""
    was_training = body.training
    body.eval()
    x = torch.zeros(1, 3, size, size)
    names: List[str] = []
    level = size
    for name, m in body.items():
        x = m(x)
        if x.shape[-1] * 1.5 <= level:  # about halved (unpadded convs shave a few pixels)
            names.append(name)
            level = x.shape[-1]
        elif names:
            names[-1] = name
    body.train(was_training)
    return names


def run_taps(body: nn.ModuleDict, taps: Mapping[str, str], x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Run ``body`` in order and collect the outputs of the tapped children, under their keys."""
    out: Dict[str, torch.Tensor] = OrderedDict()
    for name, m in body.items():
        x = m(x)
        if name in taps:
            out[taps[name]] = x
            if len(out) == len(taps):
                break
    return out


def _dilation_kwargs(arch: str, output_stride: int) -> dict:
    if output_stride == 32:
        return {}
    if arch.startswith(("resnet", "resnext", "wide_resnet")):
        table = {8: [False, True, True], 16: [False, False, True]}
        if output_stride not in table:
            raise ConfigError(f"FeatureBackbone.output_stride={output_stride}: ResNets support 8, 16, 32")
        return {"replace_stride_with_dilation": table[output_stride]}
    if arch.startswith("mobilenet_v3"):
        if output_stride != 16:
            raise ConfigError(f"FeatureBackbone.output_stride={output_stride}: MobileNetV3 supports 16, 32")
        return {"dilated": True}
    raise ConfigError(f"FeatureBackbone.output_stride: {arch} cannot be dilated; use 32")


def build_network(arch: str, pretrained: Optional[str] = None, **kwargs) -> nn.Module:
    """A registered architecture (``archs``) with 1000 outputs (its head is dropped by the extractor)."""
    if arch not in ARCHS:
        raise ConfigError(f"FeatureBackbone.arch: '{arch}' is not a known architecture.{did_you_mean(arch, ARCHS.names())} "
                          f"List them: python tools/list_models.py archs")
    if arch in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=False, init_weights=True)
    try:
        return ARCHS.get(arch)(num_classes=1000, pretrained=pretrained, **kwargs)
    except NotImplementedError as e:  # e.g. ResNet-18/34 BasicBlocks cannot dilate
        raise ConfigError(f"FeatureBackbone: {arch} with {kwargs}: {e}; use output_stride 32 or a bottleneck "
                          f"ResNet (resnet50/101)") from None


@BACKBONES.register()
class FeatureBackbone(nn.Module):
    """Args:
        arch: a registered architecture (``python tools/list_models.py archs``).
        out_indices: levels to return, 0 = the first level after the stem's first downsampling
            (stride 2), so for ResNet ``(1, 2, 3, 4)`` are C2..C5 (strides 4..32). Keys: the level.
        return_layers: instead of levels, the children to tap: ``{child name: key}`` or a list of
            child names (keys "0", "1", ...). Children of ``features`` / ``layers`` are opened up.
        pretrained: local path to torchvision-format classification weights.
        frozen_stages: levels ``0..frozen_stages`` get ``requires_grad=False`` (-1 freezes nothing).
        norm: ``bn`` (trainable BatchNorm), ``frozen_bn`` (FrozenBatchNorm2d) or ``sync_bn``.
        output_stride: 32 (plain), 16 or 8 (dilated last stages).
        bn_momentum: override the BatchNorm momentum (torchvision's MobileNetV3 uses 0.01, which
            leaves the running statistics far behind in short from-scratch runs; 0.1 catches up).
        arch_kwargs: extra constructor arguments (e.g. ``replace_stride_with_dilation``).
        probe_size: side of the zero image used once to find the levels, channels and strides.
    """

    def __init__(self, arch: str, out_indices: Sequence[int] = (1, 2, 3, 4),
                 return_layers: Union[None, Sequence[str], Mapping[str, str]] = None, pretrained: Optional[str] = None,
                 frozen_stages: int = -1, norm: str = "bn", output_stride: int = 32,
                 bn_momentum: Optional[float] = None, arch_kwargs: Optional[dict] = None, probe_size: int = 224):
        super().__init__()
        if norm not in ("bn", "frozen_bn", "sync_bn"):
            raise ConfigError(f"FeatureBackbone.norm: '{norm}' must be one of bn, frozen_bn, sync_bn")
        kwargs = dict(arch_kwargs or {})
        kwargs.update(_dilation_kwargs(arch, output_stride))
        net = build_network(arch, pretrained, **kwargs)
        self.arch = arch
        self.body = nn.ModuleDict(_flatten(net))
        dilated = {k: v for k, v in kwargs.items() if k in ("replace_stride_with_dilation", "dilated") and v}
        if dilated:  # levels are named by the undilated layout (layer3 stays level 3 at stride 16 -> 8)
            plain = {k: v for k, v in kwargs.items() if k not in dilated}
            self.stage_ends = _level_ends(nn.ModuleDict(_flatten(build_network(arch, None, **plain))), probe_size)
        else:
            self.stage_ends = _level_ends(self.body, probe_size)
        self.probe_size = probe_size
        if return_layers is None:
            bad = [i for i in out_indices if not 0 <= i < len(self.stage_ends)]
            if bad:
                raise ConfigError(f"FeatureBackbone.out_indices {list(out_indices)}: {arch} has levels "
                                  f"0..{len(self.stage_ends) - 1}")
            self.out_indices = list(out_indices)
            taps = {self.stage_ends[i]: str(i) for i in self.out_indices}
        else:
            self.out_indices = []
            taps = (dict(return_layers) if isinstance(return_layers, Mapping)
                    else {str(c): str(k) for k, c in enumerate(return_layers)})
        self.set_taps(taps)
        if bn_momentum is not None:
            for m in self.body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = bn_momentum
        if norm == "frozen_bn":
            _freeze_bn(self.body)
        elif norm == "sync_bn":
            self.body = nn.SyncBatchNorm.convert_sync_batchnorm(self.body)
        self._freeze(frozen_stages)

    def set_taps(self, taps: Mapping[str, str]) -> None:
        """Tap these children (``{child name: output key}``): measures their channels and strides
        with one probe and drops the children after the last tap (they would compute for nothing)."""
        taps = {str(k): str(v) for k, v in taps.items()}
        missing = [k for k in taps if k not in self.body]
        if missing:
            raise ConfigError(f"FeatureBackbone.return_layers: {missing} are not children of {self.arch}; "
                              f"children are {list(self.body)}")
        names = list(self.body.keys())
        order = sorted(taps, key=names.index)
        self.taps = OrderedDict((k, taps[k]) for k in order)
        was = self.body.training
        self.body.eval()
        with torch.no_grad():
            out = run_taps(self.body, self.taps, torch.zeros(1, 3, self.probe_size, self.probe_size))
        self.body.train(was)
        self.out_channels: List[int] = [v.shape[1] for v in out.values()]
        self.out_strides: List[int] = [round(self.probe_size / v.shape[-1]) for v in out.values()]
        for n in names[names.index(order[-1]) + 1:]:
            del self.body[n]

    @property
    def return_layers(self) -> List[str]:
        return list(self.taps)

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
        return run_taps(self.body, self.taps, x)
