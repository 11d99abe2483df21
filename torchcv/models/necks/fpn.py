"""Feature pyramid network: lateral 1x1 convs, nearest-neighbour top-down path, 3x3 output convs.

Parameter names match torchvision's ``FeaturePyramidNetwork`` (``inner_blocks.i.0``,
``layer_blocks.i.0``) so its detection checkpoints load as they are.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import NECKS, ConfigError


@NECKS.register()
class FPN(nn.Module):
    """Args:
        in_channels: channels of each input level, finest first.
        out_channels: channels of every output level.
        extra: ``maxpool`` adds a stride-2 subsampled copy of the coarsest output (named ``pool``,
            as Faster R-CNN's P6), or ``null`` for none.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, extra: Optional[str] = "maxpool"):
        super().__init__()
        if extra not in (None, "maxpool"):
            raise ConfigError(f"FPN.extra: '{extra}' is not supported; use 'maxpool' or null")
        self.inner_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels])
        self.layer_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1))
                                           for _ in in_channels])
        self.extra = extra
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

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
        return OrderedDict(zip(names, outs))
