"""A light feature trunk for the heatmap pose models on CPU: VGG's layout (3x3 conv + BN + ReLU
blocks, a stride-2 step per stage) at a fraction of the width, so OpenPose trains from scratch in
minutes on the built-in data. The paper's trunk is ``FeatureBackbone`` with ``arch: vgg19`` tapped
at conv4_2 (``return_layers: {"22": c4}``)."""
from __future__ import annotations

from typing import Dict, List, Sequence, Union

from torch import Tensor, nn

from ...registry import BACKBONES, ConfigError


@BACKBONES.register()
class PoseLightTrunk(nn.Module):
    """Args:
        channels: one stage per entry; each starts with a stride-2 3x3 conv (output stride
            2 ** len(channels)).
        convs_per_stage: 3x3 convs per stage (the first one strided); one number or one per stage
            (a single conv at the high-resolution first stage saves most of the cost).
    Returns ``{"0": features}``; ``out_channels`` / ``out_strides`` describe them.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128), convs_per_stage: Union[int, Sequence[int]] = 2):
        super().__init__()
        counts = [convs_per_stage] * len(channels) if isinstance(convs_per_stage, int) else list(convs_per_stage)
        if not channels or len(counts) != len(channels) or min(counts) < 1:
            raise ConfigError(f"PoseLightTrunk: channels={list(channels)}, convs_per_stage={convs_per_stage}: give at "
                              f"least one stage and at least one conv per stage (one count, or one per stage)")
        layers: List[nn.Module] = []
        cin = 3
        for c, n in zip(channels, counts):
            for i in range(n):
                layers += [nn.Conv2d(cin, c, 3, stride=2 if i == 0 else 1, padding=1, bias=False),
                           nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                cin = c
        self.body = nn.Sequential(*layers)
        self.out_channels = [cin]
        self.out_strides = [2 ** len(channels)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {"0": self.body(x)}
