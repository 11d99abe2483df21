"""ShuffleNet v1 (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices", CVPR 2018), laid out like megvii-model/ShuffleNet-Series (the authors' reference).

A unit is a 1x1 *group* convolution, a 3x3 depthwise convolution and a second 1x1 group
convolution. Group convolutions alone would keep every output channel blind to the other groups;
the channel shuffle between them lets the second group convolution read from all groups. A stride-2
unit concatenates an average-pooled copy of its input instead of adding it, so width grows at each
stage without a projection.

Registered in ``archs`` as ``shufflenet_v1_g{3,8}_x{0_5,1_0,1_5,2_0}``. Top-level children follow
torchvision's layout (``conv1``, ``maxpool``, ``stage2..4``, ``avgpool``, ``fc``), so
``FeatureBackbone`` finds the stages at strides 8, 16 and 32.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import ARCHS, ConfigError

STAGE_REPEATS = (4, 8, 4)
# (stem channels, stage2, stage3, stage4 output channels) per (groups, width), from the reference.
# Stage widths scale with the multiplier; the stem stays small and is chosen so that the first
# unit's concatenation (stem + new channels) divides evenly into groups.
STAGE_CHANNELS: Dict[Tuple[int, str], Tuple[int, int, int, int]] = {
    (3, "0_5"): (12, 120, 240, 480),
    (3, "1_0"): (24, 240, 480, 960),
    (3, "1_5"): (24, 360, 720, 1440),
    (3, "2_0"): (48, 480, 960, 1920),
    (8, "0_5"): (16, 192, 384, 768),
    (8, "1_0"): (24, 384, 768, 1536),
    (8, "1_5"): (24, 576, 1152, 2304),
    (8, "2_0"): (48, 768, 1536, 3072),
}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channels across groups: read the channels as a (per-group, groups) grid and
    transpose it (the reference's order), so each group of the next group conv sees every group."""
    b, c, h, w = x.shape
    return x.reshape(b, c // groups, groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleV1Unit(nn.Module):
    """Args:
        in_channels, out_channels: of the whole unit (a stride-2 unit's branch makes
            ``out - in`` channels, concatenated to the pooled input).
        groups: of the two 1x1 convolutions.
        stride: 1 (residual add) or 2 (average-pooled shortcut, concatenated).
        group_first_conv: False for the very first unit, whose input (the stem) is too narrow to split.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int, stride: int,
                 group_first_conv: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV1Unit: stride must be 1 or 2, got {stride}")
        self.stride, self.groups = stride, groups
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // 4  # bottleneck width: a quarter of the unit's output, as in the paper
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=groups if group_first_conv else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.dwconv = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.dwconv(y))  # no ReLU after the depthwise conv (paper, Fig. 2)
        # shuffling after the depthwise conv equals shuffling before it (the depthwise conv is per
        # channel); the reference does it here, so its weights keep their meaning
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = self.bn3(self.conv3(y))
        if self.stride == 1:
            return F.relu(y + x, inplace=True)
        # the pooled input is already non-negative (it follows a ReLU): ReLU on the branch is enough
        return torch.cat([self.shortcut(x), F.relu(y, inplace=True)], dim=1)


class ShuffleNetV1(nn.Module):
    """Args:
        groups: of the 1x1 convolutions (3 or 8).
        width: width multiplier as in the arch names: ``0_5``, ``1_0``, ``1_5``, ``2_0``.
        zero_init_residual: start every residual unit's last BatchNorm at zero, so each unit begins
            as the identity (Goyal et al. 2017; torchvision's ResNet option). From scratch on small
            data this takes the instability out of the first epochs (the summed branches otherwise
            grow the activations unit after unit).
    """

    def __init__(self, groups: int = 3, width: str = "1_0", num_classes: int = 1000,
                 zero_init_residual: bool = False):
        super().__init__()
        if (groups, width) not in STAGE_CHANNELS:
            known = sorted({g for g, _ in STAGE_CHANNELS}), sorted({w for _, w in STAGE_CHANNELS})
            raise ConfigError(f"ShuffleNetV1(groups={groups}, width={width!r}): groups must be one of {known[0]} "
                              f"and width one of {known[1]}")
        stem, *stage_channels = STAGE_CHANNELS[(groups, width)]
        self.groups, self.width = groups, width
        self.conv1 = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False),
            bn=nn.BatchNorm2d(stem),
            act=nn.ReLU(inplace=True),
        ))
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = stem
        for i, (out_ch, repeats) in enumerate(zip(stage_channels, STAGE_REPEATS)):
            units = []
            for j in range(repeats):
                units.append(ShuffleV1Unit(in_ch, out_ch, groups, stride=2 if j == 0 else 1,
                                           group_first_conv=not (i == 0 and j == 0)))
                in_ch = out_ch
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # adaptive: any input size (the reference pools 7x7)
        self.fc = nn.Linear(in_ch, num_classes, bias=False)  # no bias, as the reference
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, ShuffleV1Unit) and m.stride == 1:  # stride-2 units concatenate, nothing to zero
                    nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _builder(groups: int, width: str):
    name = f"shufflenet_v1_g{groups}_x{width}"

    def build(num_classes: int = 1000, pretrained: Optional[str] = None, zero_init_residual: bool = False,
              **kwargs) -> nn.Module:
        if kwargs:
            raise ConfigError(f"{name}: unknown arguments {sorted(kwargs)} (it takes num_classes, pretrained and "
                              f"zero_init_residual)")
        net = ShuffleNetV1(groups, width, num_classes, zero_init_residual)
        if pretrained:
            from ...utils.weights import load_weights
            load_weights(net, pretrained)
        return net

    build.__name__ = name
    build.__doc__ = f"ShuffleNet v1, {groups} groups, width x{width.replace('_', '.')}"
    return build


for (_groups, _width) in STAGE_CHANNELS:
    ARCHS.register(f"shufflenet_v1_g{_groups}_x{_width}", obj=_builder(_groups, _width))
