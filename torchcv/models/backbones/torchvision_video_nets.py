"""The action recognition networks of the seed's torchvision.models list (pretrained on
Kinetics-400 there), registered by torchvision's names in the ``archs`` registry next to the image
architectures: ``r3d_18`` (3-D ResNet), ``mc3_18`` (mixed convolutions: 3-D in the stem and layer1,
2-D after) and ``r2plus1d_18`` ((2+1)-D: each 3-D convolution split into spatial then temporal).

Built here (not by torchvision) so that they take a ``width`` multiplier: the stage channels
64/128/256/512 and the stem channels are multiplied by ``width`` and rounded to a multiple of 8
(at least 8). At ``width=1.0`` the module names, state_dict keys and outputs are torchvision's, so a
torchvision-format weights file loads as is; narrower nets (e.g. ``width=0.25``: 16/32/64/128) are
for CPU-sized training from scratch.

Input ``[B, 3, T, H, W]`` (RGB in [0, 1], Kinetics mean/std normalised), output logits
``[B, num_classes]``. The builders take the same ``num_classes`` / ``pretrained`` (a local
torchvision-format weights file, never downloaded) as the image ones, plus ``width``; their
``video`` attribute tells ``VideoClassifier`` that they take clips.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from torch import nn

from ...registry import ARCHS, ConfigError

VIDEO_ARCH_NAMES = ["r3d_18", "mc3_18", "r2plus1d_18"]
STAGE_CHANNELS = (64, 128, 256, 512)


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 8 (at least 8); exactly ``channels`` at width 1."""
    if width == 1.0:
        return channels
    return max(8, int(round(channels * width / 8.0)) * 8)


def _bn_relu(channels: int) -> List[nn.Module]:
    return [nn.BatchNorm3d(channels), nn.ReLU(inplace=True)]


# Convolution kinds: (in, out, hidden, stride) -> module. ``hidden`` is used by the (2+1)-D one only.
def _conv_3d(cin: int, cout: int, hidden: int, stride: int) -> nn.Module:
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv_2d(cin: int, cout: int, hidden: int, stride: int) -> nn.Module:
    return nn.Conv3d(cin, cout, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)


def _conv_2plus1d(cin: int, cout: int, hidden: int, stride: int) -> nn.Module:
    spatial = nn.Conv3d(cin, hidden, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1),
                        bias=False)
    temporal = nn.Conv3d(hidden, cout, kernel_size=(3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0),
                         bias=False)
    return nn.Sequential(spatial, *_bn_relu(hidden), temporal)


_SPATIAL_ONLY = {_conv_2d}  # these keep the time axis when a stage downsamples


def _hidden_2plus1d(cin: int, cout: int) -> int:
    # the (2+1)-D split keeps the parameter count of the 3x3x3 convolution it replaces
    return (cin * cout * 27) // (cin * 9 + 3 * cout)


class BasicBlock3d(nn.Module):
    def __init__(self, conv, cin: int, cout: int, stride: int = 1):
        super().__init__()
        hidden = _hidden_2plus1d(cin, cout)
        self.conv1 = nn.Sequential(conv(cin, cout, hidden, stride), *_bn_relu(cout))
        self.conv2 = nn.Sequential(conv(cout, cout, hidden, 1), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            ds_stride = (1, stride, stride) if conv in _SPATIAL_ONLY else stride
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, kernel_size=1, stride=ds_stride, bias=False),
                                            nn.BatchNorm3d(cout))
        self.stride = stride

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


def _stem_3d(cout: int, width: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(3, cout, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                         *_bn_relu(cout))


def _stem_2plus1d(cout: int, width: float) -> nn.Sequential:
    hidden = 45 if width == 1.0 else max(8, int(round(45 * width)))
    return nn.Sequential(
        nn.Conv3d(3, hidden, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        *_bn_relu(hidden),
        nn.Conv3d(hidden, cout, kernel_size=(3, 1, 1), stride=1, padding=(1, 0, 0), bias=False),
        *_bn_relu(cout))


class VideoResNet(nn.Module):
    """An 18-layer clip ResNet: stem, four stages of two basic blocks, global average pool, linear."""

    def __init__(self, stem, convs: Sequence, num_classes: int = 400, width: float = 1.0,
                 blocks: Sequence[int] = (2, 2, 2, 2)):
        super().__init__()
        if not width > 0:
            raise ConfigError(f"model width must be > 0, got {width}")
        channels = [scaled_channels(c, width) for c in STAGE_CHANNELS]
        self.width = width
        self.stem = stem(channels[0], width)
        cin = channels[0]
        for i, (conv, cout, n) in enumerate(zip(convs, channels, blocks)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock3d(conv, cin, cout, stride)] + [BasicBlock3d(conv, cout, cout) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


_SPECS = {
    "r3d_18": (_stem_3d, [_conv_3d] * 4),
    "mc3_18": (_stem_3d, [_conv_3d] + [_conv_2d] * 3),
    "r2plus1d_18": (_stem_2plus1d, [_conv_2plus1d] * 4),
}


def build_video_resnet(arch: str, num_classes: int = 400, pretrained: Optional[str] = None,
                       width: float = 1.0) -> nn.Module:
    stem, convs = _SPECS[arch]
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"model.width={width!r}: the width multiplier of {arch} must be a number > 0 "
                          f"(1.0 is torchvision's network, 0.25 a quarter of its channels)")
    net = VideoResNet(stem, convs, num_classes=num_classes, width=float(width))
    if pretrained:
        from ...utils.weights import load_weights
        load_weights(net, pretrained)
    return net


build_torchvision_video_net = build_video_resnet  # the former name


def _builder(arch: str):
    def build(num_classes: int = 400, pretrained: Optional[str] = None, width: float = 1.0) -> nn.Module:
        return build_video_resnet(arch, num_classes, pretrained, width)

    build.__name__ = arch
    build.__doc__ = (f"{arch} with torchvision's layout and state_dict keys at width 1.0; ``width`` scales "
                     "the channels (rounded to a multiple of 8)")
    build.video = True  # takes clips [B, 3, T, H, W]
    return build


for _arch in VIDEO_ARCH_NAMES:
    ARCHS.register(_arch, obj=_builder(_arch))
