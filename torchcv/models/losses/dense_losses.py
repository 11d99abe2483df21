"""Losses of single-stage detectors (RetinaNet, FCOS, SSD), batched over the images.

Each equals torchvision's per-image formulation (the same normalisation: RetinaNet divides each
image's sum by its own number of foreground anchors and averages the images; FCOS and SSD divide
by the batch's foreground count); only the order of summation differs. The focal and GIoU losses
are ``torchvision.ops``'. Box targets are computed for the foreground anchors only.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from ..heads.dense_utils import BoxLinearCoder
from ..heads.det_utils import BoxCoder, Matcher


def foreground(matched: List[Tensor], targets: List[Dict[str, Tensor]]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(image index, anchor index, matched gt box, gt label) of every foreground anchor, image-major."""
    imgs, anchors, boxes, labels = [], [], [], []
    for i, (m, t) in enumerate(zip(matched, targets)):
        idx = torch.where(m >= 0)[0]
        gt = m[idx]
        imgs.append(torch.full_like(idx, i))
        anchors.append(idx)
        boxes.append(t["boxes"][gt])
        labels.append(t["labels"][gt])
    return torch.cat(imgs), torch.cat(anchors), torch.cat(boxes), torch.cat(labels)


def box_regression_loss(kind: str, coder: BoxCoder, pred: Tensor, anchors: Tensor, gt: Tensor) -> Tensor:
    """Per-anchor loss (K,) of predicted codes against matched boxes: l1 / smooth_l1 on the codes,
    or giou on the decoded boxes (torchvision's ``_box_loss``)."""
    if kind in ("l1", "smooth_l1"):
        target = coder.encode(gt, anchors)
        if kind == "l1":
            return F.l1_loss(pred, target, reduction="none").sum(1)
        return F.smooth_l1_loss(pred, target, reduction="none").sum(1)
    boxes = coder.decode(pred, anchors).reshape(-1, 4)
    return generalized_box_iou_loss(boxes, gt, reduction="none", eps=1e-7)


def retinanet_loss(cls_logits: Tensor, bbox_reg: Tensor, anchors: Tensor, matched: List[Tensor],
                   targets: List[Dict[str, Tensor]], coder: BoxCoder, box_loss: str = "l1",
                   focal_alpha: float = 0.25, focal_gamma: float = 2.0) -> Dict[str, Tensor]:
    """Sigmoid focal loss over every anchor not between the IoU thresholds, and the box loss over
    the foreground anchors; each image's sums divided by its foreground count, then averaged."""
    n = cls_logits.shape[0]
    m = torch.stack(matched)
    img, anc, gt_boxes, gt_labels = foreground(matched, targets)
    num_fg = torch.bincount(img, minlength=n).clamp(min=1).to(cls_logits.dtype)
    cls_target = torch.zeros_like(cls_logits)
    cls_target[img, anc, gt_labels] = 1.0
    focal = sigmoid_focal_loss(cls_logits, cls_target, focal_alpha, focal_gamma, reduction="none").sum(-1)
    valid = (m != Matcher.BETWEEN).to(focal.dtype)
    cls_loss = ((focal * valid).sum(1) / num_fg).sum() / n
    per_anchor = box_regression_loss(box_loss, coder, bbox_reg[img, anc], anchors[anc], gt_boxes)
    box_per_image = torch.zeros(n, dtype=per_anchor.dtype, device=per_anchor.device).index_add_(0, img, per_anchor)
    return {"loss_classifier": cls_loss, "loss_box_reg": (box_per_image / num_fg).sum() / max(1, n)}


def fcos_loss(cls_logits: Tensor, bbox_reg: Tensor, ctrness: Tensor, anchors: Tensor, matched: List[Tensor],
              targets: List[Dict[str, Tensor]], coder: BoxLinearCoder, focal_alpha: float = 0.25,
              focal_gamma: float = 2.0) -> Dict[str, Tensor]:
    """Focal loss over all locations, GIoU of the decoded boxes and BCE of the centre-ness at the
    foreground locations; all divided by the batch's foreground count."""
    img, anc, gt_boxes, gt_labels = foreground(matched, targets)
    num_fg = max(1, img.numel())
    cls_target = torch.zeros_like(cls_logits)
    cls_target[img, anc, gt_labels] = 1.0
    loss_cls = sigmoid_focal_loss(cls_logits, cls_target, focal_alpha, focal_gamma, reduction="sum")
    fg_anchors = anchors[anc]
    boxes = coder.decode(bbox_reg[img, anc], fg_anchors)
    loss_box = generalized_box_iou_loss(boxes, gt_boxes, reduction="sum")
    ltrb = coder.encode(fg_anchors, gt_boxes)
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    target_ctr = torch.sqrt((lr.min(dim=-1)[0] / lr.max(dim=-1)[0]) * (tb.min(dim=-1)[0] / tb.max(dim=-1)[0]))
    loss_ctr = F.binary_cross_entropy_with_logits(ctrness[img, anc, 0], target_ctr, reduction="sum")
    return {"loss_classifier": loss_cls / num_fg, "loss_box_reg": loss_box / num_fg, "loss_centerness": loss_ctr / num_fg}


def ssd_loss(cls_logits: Tensor, bbox_reg: Tensor, anchors: Tensor, matched: List[Tensor],
             targets: List[Dict[str, Tensor]], coder: BoxCoder, neg_to_pos_ratio: float) -> Dict[str, Tensor]:
    """Smooth-L1 of the foreground boxes; softmax cross-entropy of the foreground and of the hardest
    negatives (``neg_to_pos_ratio`` per positive, per image); both divided by the foreground count."""
    img, anc, gt_boxes, gt_labels = foreground(matched, targets)
    num_fg = max(1, img.numel())
    target = coder.encode(gt_boxes, anchors[anc])
    box_loss = F.smooth_l1_loss(bbox_reg[img, anc], target, reduction="sum")
    cls_targets = torch.zeros(cls_logits.shape[:2], dtype=torch.int64, device=cls_logits.device)
    cls_targets[img, anc] = gt_labels
    num_classes = cls_logits.size(-1)
    ce = F.cross_entropy(cls_logits.reshape(-1, num_classes), cls_targets.reshape(-1),
                         reduction="none").view(cls_targets.size())
    fg = cls_targets > 0
    num_negative = neg_to_pos_ratio * fg.sum(1, keepdim=True)
    negative = ce.detach().clone()  # ranking only: no gradient through the sort
    negative[fg] = -float("inf")
    _, order = negative.sort(1, descending=True)
    hardest = order.sort(1)[1] < num_negative  # rank of each anchor below the per-image quota
    return {"loss_classifier": (ce[fg].sum() + ce[hardest].sum()) / num_fg, "loss_box_reg": box_loss / num_fg}
