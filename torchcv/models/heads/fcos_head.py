"""FCOS' head: a classification tower and a regression tower (3x3 conv + GroupNorm + ReLU, four
deep), shared by every pyramid level; per location class logits, (l, t, r, b) distances (ReLU:
never negative) and a centre-ness logit from the regression tower. Parameter names match
torchvision's ``FCOSHead`` (``classification_head.conv.0.weight``, ``conv.1`` GroupNorm ...)."""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import HEADS
from .dense_utils import flatten_head_output


def _tower(channels: int, num_convs: int, groups: int) -> nn.Sequential:
    layers: List[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(groups, channels), nn.ReLU()]
    tower = nn.Sequential(*layers)
    for m in tower.children():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
    return tower


class FCOSClassificationHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4,
                 prior_probability: float = 0.01, norm_groups: int = 32):
        super().__init__()
        self.num_classes, self.num_anchors = num_classes, num_anchors
        self.conv = _tower(in_channels, num_convs, norm_groups)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))

    def forward(self, feats: List[Tensor]) -> Tensor:
        return torch.cat([flatten_head_output(self.cls_logits(self.conv(f)), self.num_classes) for f in feats], 1)


class FCOSRegressionHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, num_convs: int = 4, norm_groups: int = 32):
        super().__init__()
        self.conv = _tower(in_channels, num_convs, norm_groups)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        self.bbox_ctrness = nn.Conv2d(in_channels, num_anchors, 3, padding=1)
        for layer in (self.bbox_reg, self.bbox_ctrness):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, feats: List[Tensor]) -> Tuple[Tensor, Tensor]:
        boxes, ctrness = [], []
        for f in feats:
            t = self.conv(f)
            boxes.append(flatten_head_output(F.relu(self.bbox_reg(t)), 4))
            ctrness.append(flatten_head_output(self.bbox_ctrness(t), 1))
        return torch.cat(boxes, 1), torch.cat(ctrness, 1)


@HEADS.register()
class FCOSHead(nn.Module):
    """Args:
        in_channels: channels of every pyramid level.
        num_anchors: points per location (FCOS: 1).
        num_classes: class logits per location (torchvision counts the background: 91 for COCO).
        num_convs: depth of each tower. norm_groups: GroupNorm groups (must divide in_channels).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4,
                 norm_groups: int = 32):
        super().__init__()
        self.classification_head = FCOSClassificationHead(in_channels, num_anchors, num_classes, num_convs,
                                                          norm_groups=norm_groups)
        self.regression_head = FCOSRegressionHead(in_channels, num_anchors, num_convs, norm_groups)
        self.num_anchors = num_anchors

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        boxes, ctrness = self.regression_head(feats)
        return {"cls_logits": self.classification_head(feats), "bbox_regression": boxes, "bbox_ctrness": ctrness}
