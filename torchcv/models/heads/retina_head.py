"""RetinaNet's head: two towers of four 3x3 conv + ReLU (or + GroupNorm in the v2 variant), shared by
every pyramid level, ending in per-anchor class logits and box deltas. Parameter names match
torchvision's ``RetinaNetHead`` (``classification_head.conv.0.0.weight``, ``cls_logits``,
``regression_head.bbox_reg`` ...), including its conversion of version-1 checkpoints
(``conv.0``, ``conv.2`` ... without the inner Sequential)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from ...registry import HEADS
from .dense_utils import flatten_head_output


class ConvNormReLU(nn.Sequential):
    """3x3 conv (+ norm) + ReLU laid out like torchvision's Conv2dNormActivation: the conv at ``0``."""

    def __init__(self, channels: int, group_norm: bool = False):
        layers: List[nn.Module] = [nn.Conv2d(channels, channels, 3, padding=1, bias=not group_norm)]
        if group_norm:
            layers.append(nn.GroupNorm(32, channels))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _v1_to_v2(state_dict: dict, prefix: str) -> None:
    # version-1 checkpoints (torchvision's COCO weights) name the tower convs conv.0, conv.2, conv.4, conv.6
    for i in range(4):
        for kind in ("weight", "bias"):
            old, new = f"{prefix}conv.{2 * i}.{kind}", f"{prefix}conv.{i}.0.{kind}"
            if old in state_dict:
                state_dict[new] = state_dict.pop(old)


class _Tower(nn.Module):
    _version = 2

    def __init__(self, channels: int, num_convs: int, group_norm: bool):
        super().__init__()
        self.conv = nn.Sequential(*[ConvNormReLU(channels, group_norm) for _ in range(num_convs)])
        for m in self.conv.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if local_metadata.get("version") is None or local_metadata["version"] < 2:
            _v1_to_v2(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class RetinaNetClassificationHead(_Tower):
    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, prior_probability: float = 0.01,
                 num_convs: int = 4, group_norm: bool = False):
        super().__init__(in_channels, num_convs, group_norm)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        # start every anchor at background probability 1 - prior: the focal loss is stable from step one
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
        self.num_classes, self.num_anchors = num_classes, num_anchors

    def forward(self, feats: List[Tensor]) -> Tensor:
        return torch.cat([flatten_head_output(self.cls_logits(self.conv(f)), self.num_classes) for f in feats], 1)


class RetinaNetRegressionHead(_Tower):
    def __init__(self, in_channels: int, num_anchors: int, num_convs: int = 4, group_norm: bool = False):
        super().__init__(in_channels, num_convs, group_norm)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        nn.init.normal_(self.bbox_reg.weight, std=0.01)
        nn.init.zeros_(self.bbox_reg.bias)

    def forward(self, feats: List[Tensor]) -> Tensor:
        return torch.cat([flatten_head_output(self.bbox_reg(self.conv(f)), 4) for f in feats], 1)


@HEADS.register()
class RetinaNetHead(nn.Module):
    """Args:
        in_channels: channels of every pyramid level.
        num_anchors: anchors per location (must equal the anchor generator's).
        num_classes: class logits per anchor (torchvision counts the background: 91 for COCO).
        num_convs: depth of each tower. group_norm: GroupNorm(32) after each tower conv (v2).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4,
                 group_norm: bool = False, prior_probability: float = 0.01):
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(in_channels, num_anchors, num_classes,
                                                               prior_probability, num_convs, group_norm)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, num_convs, group_norm)
        self.num_anchors = num_anchors

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        return {"cls_logits": self.classification_head(feats), "bbox_regression": self.regression_head(feats)}
