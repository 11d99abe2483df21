"""SSD's heads: one predictor per feature map (its own weights, since every map has its own channels
and number of default boxes) for class logits and box deltas. SSD300 uses a 3x3 conv, SSDlite a
depthwise 3x3 conv + BN + ReLU6 followed by a 1x1 conv. Parameter names match torchvision's
(``classification_head.module_list.0.weight`` / ``...module_list.0.0.0.weight``)."""
from __future__ import annotations

from functools import partial
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from ...registry import HEADS, ConfigError
from .dense_utils import flatten_head_output


class SSDScoringHead(nn.Module):
    """``module_list[i]`` predicts ``columns`` values per default box of feature map ``i``."""

    def __init__(self, module_list: nn.ModuleList, columns: int):
        super().__init__()
        self.module_list = module_list
        self.num_columns = columns

    def forward(self, feats: List[Tensor]) -> Tensor:
        if len(feats) != len(self.module_list):
            raise ValueError(f"SSD head built for {len(self.module_list)} feature maps got {len(feats)}")
        return torch.cat([flatten_head_output(m(f), self.num_columns) for m, f in zip(self.module_list, feats)], 1)


def _check(in_channels: Sequence[int], num_anchors: Sequence[int]) -> None:
    if len(in_channels) != len(num_anchors):
        raise ConfigError(f"SSD head: the backbone gives {len(in_channels)} feature maps but the default boxes are "
                          f"defined for {len(num_anchors)}: give one aspect ratio group per feature map")


def xavier_init(modules: nn.Module) -> None:
    for m in modules.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)


def normal_init(modules: nn.Module, std: float = 0.03) -> None:
    for m in modules.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)


@HEADS.register()
class SSDHead(nn.Module):
    """SSD300: a 3x3 conv per feature map for ``num_classes`` logits and 4 deltas per default box."""

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int):
        super().__init__()
        _check(in_channels, num_anchors)
        cls = nn.ModuleList([nn.Conv2d(c, num_classes * a, 3, padding=1) for c, a in zip(in_channels, num_anchors)])
        reg = nn.ModuleList([nn.Conv2d(c, 4 * a, 3, padding=1) for c, a in zip(in_channels, num_anchors)])
        xavier_init(cls)
        xavier_init(reg)
        self.classification_head = SSDScoringHead(cls, num_classes)
        self.regression_head = SSDScoringHead(reg, 4)
        self.num_anchors = list(num_anchors)

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        return {"bbox_regression": self.regression_head(feats), "cls_logits": self.classification_head(feats)}


def _lite_predictor(cin: int, cout: int, norm_layer: Callable[..., nn.Module]) -> nn.Sequential:
    return nn.Sequential(Conv2dNormActivation(cin, cin, kernel_size=3, groups=cin, norm_layer=norm_layer,
                                              activation_layer=nn.ReLU6),
                         nn.Conv2d(cin, cout, 1))


@HEADS.register()
class SSDLiteHead(nn.Module):
    """SSDlite: depthwise 3x3 conv + BN + ReLU6, then a 1x1 conv, per feature map."""

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int,
                 bn_eps: float = 0.001, bn_momentum: float = 0.03):
        super().__init__()
        _check(in_channels, num_anchors)
        norm = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        cls = nn.ModuleList([_lite_predictor(c, num_classes * a, norm) for c, a in zip(in_channels, num_anchors)])
        reg = nn.ModuleList([_lite_predictor(c, 4 * a, norm) for c, a in zip(in_channels, num_anchors)])
        normal_init(cls)
        normal_init(reg)
        self.classification_head = SSDScoringHead(cls, num_classes)
        self.regression_head = SSDScoringHead(reg, 4)
        self.num_anchors = list(num_anchors)

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        return {"bbox_regression": self.regression_head(feats), "cls_logits": self.classification_head(feats)}
