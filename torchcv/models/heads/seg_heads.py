"""Decode heads for semantic segmentation.

Every head takes the backbone's feature dict and returns class logits at the resolution of the
feature it reads (the segmentor upsamples them to the input size). ``in_key`` names the feature
to read; it matches the backbone's output keys ("4" = ResNet layer4 for a ``FeatureBackbone``
tapped by level, whatever ``return_layers`` says when it taps children by name).

Sub-module names are short and descriptive; ``torchcv.models.segmentors.tv_compat`` maps
torchvision's ``classifier.N`` keys onto them.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import HEADS


class ConvBNReLU(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU, children named ``conv``, ``bn``, ``act``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            act=nn.ReLU(inplace=True),
        ))


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@HEADS.register()
class FCNHead(nn.Module):
    """3x3 conv-BN-ReLU, dropout, 1x1 classifier (FCN; also the usual auxiliary head)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int | None = None, in_key: str = "out",
                 dropout: float = 0.1):
        super().__init__()
        self.in_key, self.num_classes = in_key, num_classes
        channels = channels or in_channels // 4
        self.conv = ConvBNReLU(in_channels, channels, 3)
        self.dropout = nn.Dropout(dropout)
        self.cls_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.dropout(self.conv(feats[self.in_key])))


class ASPPPool(nn.Module):
    """Image-level branch of ASPP: global average, 1x1 conv-BN-ReLU, broadcast back."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upsample(self.conv(F.adaptive_avg_pool2d(x, 1)), x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pool branch, projected."""

    def __init__(self, in_channels: int, channels: int = 256, rates: Sequence[int] = (12, 24, 36),
                 dropout: float = 0.5):
        super().__init__()
        branches = [ConvBNReLU(in_channels, channels, 1)]
        branches += [ConvBNReLU(in_channels, channels, 3, dilation=r) for r in rates]
        branches.append(ASPPPool(in_channels, channels))
        self.branches = nn.ModuleList(branches)
        self.project = ConvBNReLU(channels * len(branches), channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(torch.cat([b(x) for b in self.branches], dim=1)))


@HEADS.register()
class ASPPHead(nn.Module):
    """DeepLabV3 head: ASPP, 3x3 conv-BN-ReLU, 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256,
                 rates: Sequence[int] = (12, 24, 36), in_key: str = "out", dropout: float = 0.5):
        super().__init__()
        self.in_key, self.num_classes = in_key, num_classes
        self.aspp = ASPP(in_channels, channels, rates, dropout)
        self.conv = ConvBNReLU(channels, channels, 3)
        self.cls_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.conv(self.aspp(feats[self.in_key])))


@HEADS.register()
class LRASPPHead(nn.Module):
    """Lite R-ASPP (MobileNetV3 paper): high-level features gated by their global context,
    upsampled to the low-level features' size, each side classified and summed."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, channels: int = 128,
                 low_key: str = "low", high_key: str = "high"):
        super().__init__()
        self.low_key, self.high_key, self.num_classes = low_key, high_key, num_classes
        self.cbr = ConvBNReLU(high_channels, channels, 1)
        self.gate = nn.Conv2d(high_channels, channels, 1, bias=False)
        self.low_cls = nn.Conv2d(low_channels, num_classes, 1)
        self.high_cls = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        low, high = feats[self.low_key], feats[self.high_key]
        x = self.cbr(high) * torch.sigmoid(self.gate(F.adaptive_avg_pool2d(high, 1)))
        x = _upsample(x, low.shape[-2:])
        return self.low_cls(low) + self.high_cls(x)


@HEADS.register()
class PSPHead(nn.Module):
    """PSPNet pyramid pooling: average-pool to each bin size, 1x1 reduce, upsample, concatenate with
    the input, then a 3x3 conv-BN-ReLU and the classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512, bins: Sequence[int] = (1, 2, 3, 6),
                 in_key: str = "out", dropout: float = 0.1):
        super().__init__()
        self.in_key, self.bins, self.num_classes = in_key, list(bins), num_classes
        reduced = in_channels // len(self.bins)
        self.stages = nn.ModuleList(ConvBNReLU(in_channels, reduced, 1) for _ in self.bins)
        self.bottleneck = ConvBNReLU(in_channels + reduced * len(self.bins), channels, 3)
        self.dropout = nn.Dropout(dropout)
        self.cls_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = feats[self.in_key]
        pyramid = [x] + [_upsample(stage(F.adaptive_avg_pool2d(x, b)), x.shape[-2:])
                         for b, stage in zip(self.bins, self.stages)]
        return self.cls_seg(self.dropout(self.bottleneck(torch.cat(pyramid, dim=1))))


@HEADS.register()
class DenseASPPHead(nn.Module):
    """DenseASPP: dilated 3x3 layers (rates 3, 6, 12, 18, 24) densely connected: each layer sees the
    input and every earlier layer's output, giving a dense range of receptive fields."""

    def __init__(self, in_channels: int, num_classes: int, rates: Sequence[int] = (3, 6, 12, 18, 24),
                 mid_channels: int = 256, growth: int = 64, in_key: str = "out", dropout: float = 0.1):
        super().__init__()
        self.in_key, self.num_classes = in_key, num_classes
        layers, c = [], in_channels
        for r in rates:
            layers.append(nn.Sequential(OrderedDict(reduce=ConvBNReLU(c, mid_channels, 1),
                                                    atrous=ConvBNReLU(mid_channels, growth, 3, dilation=r))))
            c += growth
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.cls_seg = nn.Conv2d(c, num_classes, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = feats[self.in_key]
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return self.cls_seg(self.dropout(x))
