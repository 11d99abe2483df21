"""YOLOv3's detection head: three scales, coarse to fine, as in the paper and yolov3.cfg.

Each scale has five conv+BN+leaky layers alternating 1x1 (``width``) and 3x3 (2 x ``width``), then
a 3x3 conv and the 1x1 prediction conv (``anchors x (5 + classes)`` outputs: tx, ty, tw, th,
objectness, class logits). The finer scales first take the previous scale's fifth layer through a
1x1 conv (half its width), upsample it 2x (nearest) and concatenate the backbone's map of that
resolution. Modules are defined in the order of yolov3.cfg's convolutional layers, so Darknet's
``yolov3.weights`` fill them in sequence (backbones/darknet.py).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import HEADS, ConfigError
from ..backbones.darknet import ConvBNLeaky
from .dense_utils import flatten_head_output


class YOLOScale(nn.Module):
    """One scale: [lateral 1x1 + upsample + concat], five-layer embedding, 3x3 conv, prediction."""

    def __init__(self, in_channels: int, width: int, outputs: int, lateral_from: Optional[int] = None):
        super().__init__()
        self.lateral = ConvBNLeaky(lateral_from, width, 1) if lateral_from is not None else None
        cin = in_channels + (width if lateral_from is not None else 0)
        self.embed = nn.Sequential(ConvBNLeaky(cin, width, 1), ConvBNLeaky(width, 2 * width, 3),
                                   ConvBNLeaky(2 * width, width, 1), ConvBNLeaky(width, 2 * width, 3),
                                   ConvBNLeaky(2 * width, width, 1))
        self.conv = ConvBNLeaky(width, 2 * width, 3)
        self.pred = nn.Conv2d(2 * width, outputs, 1)

    def forward(self, feat: Tensor, previous: Optional[Tensor]):
        if self.lateral is not None:
            up = F.interpolate(self.lateral(previous), size=feat.shape[-2:], mode="nearest")
            feat = torch.cat([up, feat], 1)  # yolov3.cfg's route: upsampled first, then the backbone map
        x = self.embed(feat)
        return self.pred(self.conv(x)), x


@HEADS.register()
class YOLOv3Head(nn.Module):
    """Args:
        in_channels: channels of the backbone maps, finest first (Darknet-53: 256, 512, 1024).
        num_anchors: anchors per location of each scale, finest first (3, 3, 3).
        num_classes: class logits per anchor (no background channel: COCO has 80).
        widths: 1x1 widths of the scales, finest first (yolov3.cfg: 128, 256, 512).
    Returns ``box`` (tx, ty, tw, th), ``obj`` and ``cls`` logits, (N, sum H W A, K), finest scale first.
    """

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int,
                 widths: Sequence[int] = (128, 256, 512)):
        super().__init__()
        if not (len(in_channels) == len(num_anchors) == len(widths)):
            raise ConfigError(f"YOLOv3Head: {len(in_channels)} backbone maps, {len(num_anchors)} anchor groups and "
                              f"{len(widths)} widths must agree (one per scale)")
        self.num_anchors = list(num_anchors)
        self.num_classes = num_classes
        scales = []
        # coarsest first: the order of yolov3.cfg (and of the weight file)
        for i in reversed(range(len(in_channels))):
            lateral_from = widths[i + 1] if i + 1 < len(widths) else None
            scales.append(YOLOScale(in_channels[i], widths[i], num_anchors[i] * (5 + num_classes), lateral_from))
        self.scales = nn.ModuleList(scales)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)
        for scale in self.scales:  # start at a low objectness / class probability (as RetinaNet's prior)
            nn.init.normal_(scale.pred.weight, std=0.01)
            bias = scale.pred.bias.detach().view(-1, 5 + num_classes)
            bias.zero_()
            bias[:, 4] = -4.6
            bias[:, 5:] = -4.6

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        preds: List[Tensor] = []
        previous = None
        for scale, feat in zip(self.scales, reversed(feats)):
            p, previous = scale(feat, previous)
            preds.append(p)
        k = 5 + self.num_classes
        flat = torch.cat([flatten_head_output(p, k) for p in reversed(preds)], 1)  # finest first
        return {"box": flat[..., :4], "obj": flat[..., 4:5], "cls": flat[..., 5:]}
