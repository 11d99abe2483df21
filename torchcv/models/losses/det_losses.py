"""Losses of two-stage detectors (RPN, box classification/regression, masks)."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ... import ops


def rpn_loss(objectness: Tensor, deltas: Tensor, labels: List[Tensor], targets: List[Tensor],
             pos: List[Tensor], neg: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """Objectness BCE over the sampled anchors; smooth-L1 (beta 1/9) of positive anchors' deltas,
    summed and divided by the number of sampled anchors."""
    pos_idx = torch.where(torch.cat(pos))[0]
    neg_idx = torch.where(torch.cat(neg))[0]
    sampled = torch.cat([pos_idx, neg_idx])
    labels = torch.cat(labels)
    targets = torch.cat(targets)
    objectness = objectness.flatten()
    box_loss = F.smooth_l1_loss(deltas[pos_idx], targets[pos_idx], beta=1 / 9, reduction="sum") / sampled.numel()
    obj_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled])
    return obj_loss, box_loss


def fastrcnn_loss(class_logits: Tensor, box_regression: Tensor, labels: List[Tensor],
                  regression_targets: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """Cross-entropy over sampled RoIs; smooth-L1 of the true class's deltas for positives."""
    labels = torch.cat(labels, 0)
    regression_targets = torch.cat(regression_targets, 0)
    cls_loss = F.cross_entropy(class_logits, labels)
    pos = torch.where(labels > 0)[0]
    n = class_logits.shape[0]
    box_regression = box_regression.reshape(n, box_regression.size(-1) // 4, 4)
    box_loss = F.smooth_l1_loss(box_regression[pos, labels[pos]], regression_targets[pos], beta=1 / 9,
                                reduction="sum") / labels.numel()
    return cls_loss, box_loss


def project_masks(gt_masks: Tensor, boxes: Tensor, matched: Tensor, size: int) -> Tensor:
    """Crop each matched ground-truth mask to its RoI and resample it to ``size`` x ``size``."""
    rois = torch.cat([matched.to(boxes)[:, None], boxes], dim=1)
    return ops.roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0)[:, 0]


def maskrcnn_loss(mask_logits: Tensor, proposals: List[Tensor], gt_masks: List[Tensor], gt_labels: List[Tensor],
                  matched: List[Tensor]) -> Tensor:
    """Per-pixel BCE on the mask channel of the ground-truth class."""
    size = mask_logits.shape[-1]
    labels = torch.cat([lab[idx] for lab, idx in zip(gt_labels, matched)])
    targets = torch.cat([project_masks(m, p, i, size) for m, p, i in zip(gt_masks, proposals, matched)])
    if targets.numel() == 0:
        return mask_logits.sum() * 0
    logits = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(logits, targets)
