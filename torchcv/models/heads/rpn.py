"""Region proposal network: a conv head over every FPN level, anchor matching, proposal selection."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ... import ops
from ..losses.det_losses import rpn_loss
from .det_utils import AnchorGenerator, BalancedSampler, BoxCoder, Matcher, clip_boxes, keep_large


class _ConvReLU(nn.Sequential):
    """conv + ReLU, laid out like torchvision's Conv2dNormActivation (weights under ``0``)."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))


class RPNHead(nn.Module):
    """3x3 conv then sibling 1x1 convs: objectness (A) and box deltas (4A) per position."""

    def __init__(self, in_channels: int, num_anchors: int, conv_depth: int = 1):
        super().__init__()
        self.conv = nn.Sequential(*[_ConvReLU(in_channels, in_channels) for _ in range(conv_depth)])
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, feats: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        logits, deltas = [], []
        for f in feats:
            t = self.conv(f)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def _flatten_levels(logits: List[Tensor], deltas: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """(N, A*C, H, W) per level -> (N*sum(HWA), C), ordered image, level, y, x, anchor."""
    out_l, out_d = [], []
    for lg, dl in zip(logits, deltas):
        n, ac, h, w = lg.shape
        a = dl.shape[1] // 4
        c = ac // a
        out_l.append(lg.view(n, a, c, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, c))
        out_d.append(dl.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
    return torch.cat(out_l, 1).flatten(0, -2), torch.cat(out_d, 1).reshape(-1, 4)


class RegionProposalNetwork(nn.Module):
    def __init__(self, anchor_generator: AnchorGenerator, head: RPNHead, fg_iou_thresh: float = 0.7,
                 bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n_train: int = 2000, pre_nms_top_n_test: int = 1000,
                 post_nms_top_n_train: int = 2000, post_nms_top_n_test: int = 1000, nms_thresh: float = 0.7,
                 score_thresh: float = 0.0, min_size: float = 1e-3):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=True)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.pre_nms = {True: pre_nms_top_n_train, False: pre_nms_top_n_test}
        self.post_nms = {True: post_nms_top_n_train, False: post_nms_top_n_test}
        self.nms_thresh, self.score_thresh, self.min_size = nms_thresh, score_thresh, min_size

    def _select(self, proposals: Tensor, objectness: Tensor, image_sizes: List[Tuple[int, int]],
                per_level: List[int]) -> List[Tensor]:
        n = proposals.shape[0]
        device = proposals.device
        objectness = objectness.detach().reshape(n, -1)
        levels = torch.cat([torch.full((k,), i, dtype=torch.int64, device=device) for i, k in enumerate(per_level)])
        levels = levels.reshape(1, -1).expand_as(objectness)
        # top-k per level before NMS, so the large low levels don't crowd out the others
        idx, offset = [], 0
        for ob in objectness.split(per_level, 1):
            if torch.jit.is_tracing():  # the level's anchor count depends on the traced input size
                k = torch.min(torch.tensor(self.pre_nms[self.training]), torch._shape_as_tensor(ob)[1])
            else:
                k = min(self.pre_nms[self.training], ob.shape[1])
            idx.append(ob.topk(k, dim=1)[1] + offset)
            offset += ob.shape[1]
        idx = torch.cat(idx, 1)
        rows = torch.arange(n, device=device)[:, None]
        objectness, levels, proposals = objectness[rows, idx], levels[rows, idx], proposals[rows, idx]
        probs = torch.sigmoid(objectness)
        out = []
        for boxes, scores, lvl, size in zip(proposals, probs, levels, image_sizes):
            boxes = clip_boxes(boxes, size)
            keep = keep_large(boxes, self.min_size)
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = torch.where(scores >= self.score_thresh)[0]
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = ops.batched_nms(boxes, scores, lvl, self.nms_thresh)[: self.post_nms[self.training]]
            out.append(boxes[keep])
        return out

    def _targets(self, anchors: List[Tensor], targets: List[Dict[str, Tensor]]):
        labels, matched_boxes = [], []
        for a, t in zip(anchors, targets):
            gt = t["boxes"]
            if gt.numel() == 0:
                matched_boxes.append(torch.zeros_like(a))
                labels.append(torch.zeros(a.shape[0], dtype=torch.float32, device=a.device))
                continue
            idx = self.matcher(ops.box_iou(gt, a))
            matched_boxes.append(gt[idx.clamp(min=0)])
            lab = (idx >= 0).to(torch.float32)
            lab[idx == Matcher.BELOW] = 0.0
            lab[idx == Matcher.BETWEEN] = -1.0
            labels.append(lab)
        return labels, matched_boxes

    def forward(self, batch_shape: Tuple[int, int], image_sizes: List[Tuple[int, int]], features: Dict[str, Tensor],
                targets: Optional[List[Dict[str, Tensor]]] = None) -> Tuple[List[Tensor], Dict[str, Tensor]]:
        feats = list(features.values())
        logits, deltas = self.head(feats)
        anchors = self.anchor_generator(batch_shape, feats, len(image_sizes))
        per_level = [lg[0].numel() for lg in logits]
        objectness, deltas = _flatten_levels(logits, deltas)
        proposals = self.box_coder.decode(deltas.detach(), torch.cat(anchors)).view(len(anchors), -1, 4)
        boxes = self._select(proposals, objectness, image_sizes, per_level)
        losses: Dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("RegionProposalNetwork: targets are required in training mode")
            labels, matched = self._targets(anchors, targets)
            reg_targets = [self.box_coder.encode(m, a) for m, a in zip(matched, anchors)]
            pos, neg = self.sampler(labels)
            obj_loss, box_loss = rpn_loss(objectness, deltas, labels, reg_targets, pos, neg)
            losses = {"loss_objectness": obj_loss, "loss_rpn_box_reg": box_loss}
        return boxes, losses
