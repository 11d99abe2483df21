"""Asymmetric Non-local Neural Network head (Zhu et al., "Asymmetric Non-local Neural Networks for
Semantic Segmentation", ICCV 2019; reference code MendelXu/ANN).

A non-local block compares every pixel (query) with every pixel (key) and averages the values by
similarity: O(N^2) in the number of pixels N. ANN's asymmetric version keeps all N queries but
samples keys and values by pyramid pooling to a few anchors (sizes 1, 3, 6, 8: 1 + 9 + 36 + 64 =
110), so the cost is O(N x 110), and the pooled anchors are themselves a multi-scale summary.

- AFNB (asymmetric fusion): queries from the high-level map (C5), keys/values from the low-level map
  (C4); the context is concatenated with C5 and fused by a 1x1 conv.
- APNB (asymmetric pyramid): the same on one map (queries, keys and values from the fused map).

Each block's output projection starts at zero, so at initialisation the attention adds nothing and
the block is its plain 1x1 fusion of the input; the attention is learned from there (as in the
non-local paper, where the zero-initialised projection makes the residual block an identity).
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import HEADS, ConfigError
from .seg_heads import ConvBNReLU


def pyramid_pool(x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, sum(s*s)]``: average-pooled anchors of every pyramid level."""
    return torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in sizes], dim=2)


class AsymmetricNonLocal(nn.Module):
    """Attention from every query pixel to the pyramid-pooled anchors of ``source``.

    Args:
        query_channels / source_channels: channels of the map giving queries / keys and values.
        key_channels: width of the query/key embedding (similarities are scaled by its 1/sqrt).
        value_channels: width of the values; ``out_proj`` maps them to ``out_channels``.
        share_query_key: one embedding for queries and keys (the self-attention case, APNB).
    """

    def __init__(self, query_channels: int, source_channels: int, key_channels: int, value_channels: int,
                 out_channels: int, pool_sizes: Sequence[int] = (1, 3, 6, 8), share_query_key: bool = False):
        super().__init__()
        if share_query_key and query_channels != source_channels:
            raise ConfigError(f"AsymmetricNonLocal: a shared query/key embedding needs equal channels, got "
                              f"{query_channels} and {source_channels}")
        self.pool_sizes = tuple(int(s) for s in pool_sizes)
        if not self.pool_sizes or min(self.pool_sizes) < 1:
            raise ConfigError(f"pool_sizes {list(pool_sizes)}: give one or more positive pooled sizes, e.g. [1, 3, 6, 8]")
        self.key_channels = key_channels
        self.query = ConvBNReLU(query_channels, key_channels, 1)
        self.key = self.query if share_query_key else ConvBNReLU(source_channels, key_channels, 1)
        self.value = nn.Conv2d(source_channels, value_channels, 1)
        self.out_proj = nn.Conv2d(value_channels, out_channels, 1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    @property
    def num_anchors(self) -> int:
        return sum(s * s for s in self.pool_sizes)

    def forward(self, query_feats: torch.Tensor, source_feats: torch.Tensor) -> torch.Tensor:
        b, _, h, w = query_feats.shape
        query = self.query(query_feats).flatten(2).transpose(1, 2)                # [B, HW, Ck]
        key = pyramid_pool(self.key(source_feats), self.pool_sizes)                 # [B, Ck, S]
        value = pyramid_pool(self.value(source_feats), self.pool_sizes).transpose(1, 2)  # [B, S, Cv]
        attention = torch.softmax(torch.bmm(query, key) * self.key_channels ** -0.5, dim=-1)  # [B, HW, S]
        context = torch.bmm(attention, value)                                       # [B, HW, Cv]
        # [B, HW, Cv] viewed as [B, Cv, H, W]: channels-last strides, no copy
        context = context.transpose(1, 2).reshape(b, -1, h, w)
        return self.out_proj(context)


class AFNB(nn.Module):
    """Asymmetric fusion non-local block: C5 queries attend to pyramid-pooled C4 anchors; the context
    is concatenated with C5 and fused (1x1 conv, BatchNorm, dropout; no ReLU, as the reference)."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, key_channels: int = 256,
                 value_channels: int = 256, pool_sizes: Sequence[int] = (1, 3, 6, 8), dropout: float = 0.05):
        super().__init__()
        self.attention = AsymmetricNonLocal(high_channels, low_channels, key_channels, value_channels, out_channels,
                                            pool_sizes)
        self.fuse = nn.Sequential(nn.Conv2d(out_channels + high_channels, out_channels, 1),
                                  nn.BatchNorm2d(out_channels), nn.Dropout2d(dropout))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(high, low), high], dim=1))


class APNB(nn.Module):
    """Asymmetric pyramid non-local block: self-attention of a map to its own pyramid-pooled anchors,
    concatenated with the map and fused (1x1 conv-BN-ReLU, dropout)."""

    def __init__(self, channels: int, out_channels: int, key_channels: int = 256, value_channels: int = 256,
                 pool_sizes: Sequence[int] = (1, 3, 6, 8), dropout: float = 0.05):
        super().__init__()
        self.attention = AsymmetricNonLocal(channels, channels, key_channels, value_channels, channels, pool_sizes,
                                            share_query_key=True)
        self.fuse = nn.Sequential(ConvBNReLU(2 * channels, out_channels, 1), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(x, x), x], dim=1))


@HEADS.register()
class ANNHead(nn.Module):
    """AFNB on (C4, C5) -> 3x3 conv-BN-ReLU to ``channels`` -> APNB -> 1x1 classifier.

    Args:
        low_channels, high_channels: channels of the low-level (``low_key``, C4) and high-level
            (``high_key``, C5) features (the paper: a dilated ResNet, both at output stride 8).
        channels: width after the fusion (512 in the paper).
        key_channels, value_channels: attention widths (256 in the paper).
        pool_sizes: pyramid pooling sizes for keys/values (1, 3, 6, 8: 110 anchors).
        dropout: Dropout2d after each block's fusion (0.05 in the reference).
    """

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, channels: int = 512,
                 key_channels: int = 256, value_channels: int = 256, pool_sizes: Sequence[int] = (1, 3, 6, 8),
                 low_key: str = "3", high_key: str = "4", dropout: float = 0.05):
        super().__init__()
        self.low_key, self.high_key, self.num_classes = low_key, high_key, num_classes
        self.fusion = AFNB(low_channels, high_channels, high_channels, key_channels, value_channels, pool_sizes,
                           dropout)
        self.bottleneck = ConvBNReLU(high_channels, channels, 3)
        self.context = APNB(channels, channels, key_channels, value_channels, pool_sizes, dropout)
        self.cls_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        # keys/values are pooled to fixed anchors, so C4 and C5 may differ in size (undilated backbones)
        low, high = feats[self.low_key], feats[self.high_key]
        return self.cls_seg(self.context(self.bottleneck(self.fusion(low, high))))
