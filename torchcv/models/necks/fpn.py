"""Feature pyramid network and the backbone + FPN combination every FPN detector uses.

FPN: lateral 1x1 convs, nearest-neighbour top-down path, 3x3 output convs, optional extra levels:
``maxpool`` (a stride-2 subsample of the coarsest output, named ``pool``: Faster/Mask R-CNN's P6)
or ``p6p7`` / ``p6p7_c5`` (two stride-2 3x3 convs from P5 or from C5, ReLU between them, named
``p6``/``p7``: RetinaNet / FCOS). Parameter names match torchvision's ``FeaturePyramidNetwork``
(``inner_blocks.i.0``, ``layer_blocks.i.0``, ``extra_blocks.p6``) so its detection checkpoints load
as they are.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import NECKS, ConfigError
from ..backbones.features import FeatureBackbone, run_taps

EXTRAS = (None, "maxpool", "p6p7", "p6p7_c5")


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2 of P5 (when ``in_channels == out_channels``) or of C5; P7 = conv3x3/2(ReLU(P6))."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for m in (self.p6, self.p7):
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.constant_(m.bias, 0)
        self.use_p5 = in_channels == out_channels

    def forward(self, outs: List[Tensor], inputs: List[Tensor]) -> List[Tensor]:
        p6 = self.p6(outs[-1] if self.use_p5 else inputs[-1])
        return [p6, self.p7(F.relu(p6))]


@NECKS.register()
class FPN(nn.Module):
    """Args:
        in_channels: channels of each input level, finest first.
        out_channels: channels of every output level.
        extra: ``maxpool``, ``p6p7`` (from P5), ``p6p7_c5`` (from C5) or ``null`` (see the module doc).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, extra: Optional[str] = "maxpool"):
        super().__init__()
        if extra not in EXTRAS:
            raise ConfigError(f"FPN.extra: '{extra}' is not supported; use one of maxpool, p6p7, p6p7_c5 or null")
        self.inner_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels])
        self.layer_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1))
                                           for _ in in_channels])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
        self.extra = extra
        if extra in ("p6p7", "p6p7_c5"):
            self.extra_blocks = LastLevelP6P7(out_channels if extra == "p6p7" else in_channels[-1], out_channels)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels

    @property
    def num_extra_levels(self) -> int:
        return {None: 0, "maxpool": 1}.get(self.extra, 2)

    def forward(self, feats: Dict[str, Tensor]) -> Dict[str, Tensor]:
        names = list(feats.keys())
        x = list(feats.values())
        if len(x) != len(self.inner_blocks):
            raise ValueError(f"FPN built for {len(self.inner_blocks)} levels got {len(x)} feature maps")
        last = self.inner_blocks[-1](x[-1])
        outs: List[Tensor] = [self.layer_blocks[-1](last)]
        for i in range(len(x) - 2, -1, -1):
            lateral = self.inner_blocks[i](x[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            outs.insert(0, self.layer_blocks[i](last))
        if self.extra == "maxpool":
            names = names + ["pool"]
            outs.append(F.max_pool2d(outs[-1], 1, 2, 0))
        elif self.extra is not None:
            names = names + ["p6", "p7"]
            outs.extend(self.extra_blocks(outs, x))
        return OrderedDict(zip(names, outs))


class BackboneWithFPN(nn.Module):
    """A ``FeatureBackbone``'s body (as ``body``) feeding an FPN (as ``fpn``): torchvision's layout
    (``backbone.body.*``, ``backbone.fpn.*``). The backbone's taps, finest first, are the FPN's
    inputs, renamed "0", "1", ...; ``return_layers`` re-taps children by name."""

    def __init__(self, backbone: FeatureBackbone, fpn: Optional[nn.Module] = None, fpn_cfg: Optional[dict] = None,
                 return_layers: Optional[Sequence] = None):
        super().__init__()
        if not isinstance(backbone, FeatureBackbone):
            raise ConfigError(f"FPN detectors need a FeatureBackbone (type: FeatureBackbone), got "
                              f"{type(backbone).__name__}")
        if return_layers:
            backbone.set_taps({str(c): str(i) for i, c in enumerate(return_layers)})
        self.body = backbone.body
        self.taps = OrderedDict((child, str(i)) for i, child in enumerate(backbone.taps))
        self.in_channels = list(backbone.out_channels)
        self.fpn = fpn if fpn is not None else FPN(self.in_channels, **(fpn_cfg or {}))
        self.out_channels = self.fpn.out_channels

    @property
    def return_layers(self) -> List[str]:
        return list(self.taps)

    @property
    def num_levels(self) -> int:
        return len(self.taps) + getattr(self.fpn, "num_extra_levels", 0)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return self.fpn(run_taps(self.body, self.taps, x))
