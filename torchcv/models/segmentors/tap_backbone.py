"""A backbone that returns the outputs of named children (torchvision's ``IntermediateLayerGetter``
idea), for segmentation models that tap a block in the middle of a stage.

``FeatureBackbone`` returns the *last* block of each stride level; torchvision's MobileNetV3
segmentation models read the *first* block of the stride-8 stage (``features[4]``), so matching
them needs a tap by child name. Module keys are ``body.<torchvision child name>``, like
``FeatureBackbone``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from torch import nn

from ...registry import BACKBONES, ConfigError
from ..backbones.features import _flatten, _freeze_bn
from ..backbones.torchvision_nets import ARCH_NAMES, build_torchvision_net


@BACKBONES.register()
class LayerTapBackbone(nn.Module):
    """Args:
        arch: a torchvision classification architecture (``resnet50``, ``mobilenet_v3_large`` ...).
        return_layers: ``{child name: output key}``, e.g. ``{"4": low, "16": high}`` for MobileNetV3
            (children of ``features`` are opened up) or ``{layer3: aux, layer4: out}`` for ResNet.
        output_stride: 8 or 16 dilates the last stages instead of striding them (ResNet via
            ``replace_stride_with_dilation``; MobileNetV3 supports 16 via ``dilated=True``); 32 = plain.
        pretrained: local path to torchvision classification weights.
        norm: ``bn`` or ``frozen_bn``.
        bn_momentum: override the BatchNorm momentum (torchvision's MobileNetV3 uses 0.01, which
            leaves the running statistics far behind in short from-scratch runs; 0.1 catches up).
    """

    def __init__(self, arch: str, return_layers: Dict[str, str], output_stride: int = 32,
                 pretrained: Optional[str] = None, norm: str = "bn", arch_kwargs: Optional[dict] = None,
                 bn_momentum: Optional[float] = None):
        super().__init__()
        if arch not in ARCH_NAMES:
            raise ConfigError(f"LayerTapBackbone.arch: '{arch}' is not a known architecture")
        kwargs = dict(arch_kwargs or {})
        if output_stride != 32:
            if arch.startswith(("resnet", "resnext", "wide_resnet")):
                table = {8: [False, True, True], 16: [False, False, True]}
                if output_stride not in table:
                    raise ConfigError(f"LayerTapBackbone.output_stride={output_stride}: ResNets support 8, 16, 32")
                kwargs["replace_stride_with_dilation"] = table[output_stride]
            elif arch.startswith("mobilenet_v3"):
                if output_stride != 16:
                    raise ConfigError(f"LayerTapBackbone.output_stride={output_stride}: MobileNetV3 supports 16, 32")
                kwargs["dilated"] = True
            else:
                raise ConfigError(f"LayerTapBackbone.output_stride: {arch} cannot be dilated; use 32")
        try:
            net = build_torchvision_net(arch, 1000, pretrained, **kwargs)
        except NotImplementedError as e:  # e.g. ResNet-18/34 BasicBlocks cannot dilate
            raise ConfigError(f"LayerTapBackbone: {arch} with output_stride={output_stride}: {e}; use 32 or a "
                              f"bottleneck ResNet (resnet50/101)") from None
        children = _flatten(net)
        missing = [k for k in return_layers if k not in children]
        if missing:
            raise ConfigError(f"LayerTapBackbone.return_layers: {missing} are not children of {arch}; "
                              f"children are {list(children)}")
        names = list(children)
        last = max(names.index(k) for k in return_layers)
        self.body = nn.ModuleDict(OrderedDict((n, children[n]) for n in names[:last + 1]))
        self.return_layers = {str(k): str(v) for k, v in return_layers.items()}
        if bn_momentum is not None:
            for m in self.body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = bn_momentum
        if norm == "frozen_bn":
            _freeze_bn(self.body)
        elif norm != "bn":
            raise ConfigError(f"LayerTapBackbone.norm: '{norm}' must be bn or frozen_bn")
        self.out_channels: List[int] = self._probe_channels()

    @torch.no_grad()
    def _probe_channels(self) -> List[int]:
        was = self.training
        self.eval()
        out = self(torch.zeros(1, 3, 64, 64))
        self.train(was)
        return [v.shape[1] for v in out.values()]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = OrderedDict()
        for name, m in self.body.items():
            x = m(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out
