"""YOLOv3's loss, after the paper (Redmon & Farhadi, 2018) and TorchCV's design.

Assignment: each ground-truth box goes to the one anchor (of the nine) whose shape -- width and
height, centres aligned -- overlaps it most; that anchor's scale is the box's scale, and the grid
cell containing the box centre predicts it. Targets: tx, ty = the centre's offset inside the cell
(predicted through a sigmoid, learned with binary cross-entropy), tw, th = log(box size / anchor
size) (squared error). Objectness: binary cross-entropy, 1 at the assigned predictions, 0
elsewhere, except that predictions whose decoded box overlaps a ground truth by more than
``ignore_thresh`` are not penalised (the paper's ignore threshold). Classes: independent logistic
classifiers (binary cross-entropy on a one-hot target) at the assigned predictions. Box terms are
weighted by ``2 - w * h / canvas area`` (Darknet's emphasis on small boxes) when
``box_size_weight``. Every term is summed over the batch and divided by the number of images.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ... import ops


def shape_iou(wh: Tensor, anchor_wh: Tensor) -> Tensor:
    """IoU of boxes (G, 2) and anchors (K, 2) as sizes with the same centre -> (G, K)."""
    inter = torch.min(wh[:, None, :], anchor_wh[None, :, :]).prod(2)
    return inter / (wh.prod(1)[:, None] + anchor_wh.prod(1)[None, :] - inter)


def yolov3_loss(outputs: Dict[str, Tensor], pred_boxes: Tensor, targets: List[Dict[str, Tensor]],
                anchor_wh: Tensor, anchor_level: Tensor, anchor_index: Tensor, grid_sizes: Sequence[Tuple[int, int]],
                strides: Sequence[int], anchors_per_location: Sequence[int], canvas: Tuple[int, int],
                ignore_thresh: float, weights: Dict[str, float], box_size_weight: bool = True) -> Dict[str, Tensor]:
    """Args:
        outputs: ``box`` (N, T, 4) tx ty tw th logits, ``obj`` (N, T, 1), ``cls`` (N, T, C).
        pred_boxes: (N, T, 4) decoded predictions (xyxy, canvas pixels), for the ignore threshold.
        anchor_wh: (K, 2) every anchor's size in pixels; anchor_level / anchor_index: (K,) its scale
            and its position among that scale's anchors.
        grid_sizes, strides, anchors_per_location: per scale, finest first (the order of T).
    """
    box, obj, cls = outputs["box"], outputs["obj"][..., 0], outputs["cls"]
    n, total = obj.shape
    device = obj.device
    counts = [h * w * a for (h, w), a in zip(grid_sizes, anchors_per_location)]
    offsets = torch.tensor([0] + counts[:-1], device=device).cumsum(0)
    widths = torch.tensor([w for _, w in grid_sizes], device=device)
    heights = torch.tensor([h for h, _ in grid_sizes], device=device)
    per_loc = torch.tensor(list(anchors_per_location), device=device)
    stride_t = torch.tensor(list(strides), dtype=box.dtype, device=device)

    obj_weight = torch.ones_like(obj)
    with torch.no_grad():
        for i, t in enumerate(targets):
            if t["boxes"].numel():
                best_iou = ops.box_iou(pred_boxes[i], t["boxes"].to(pred_boxes.dtype)).max(dim=1).values
                obj_weight[i, best_iou > ignore_thresh] = 0.0

    gt = torch.cat([t["boxes"] for t in targets]).to(box.dtype)
    labels = torch.cat([t["labels"] for t in targets])
    img = torch.cat([torch.full((len(t["boxes"]),), i, dtype=torch.int64, device=device) for i, t in enumerate(targets)])
    obj_target = torch.zeros_like(obj)
    zero = box.sum() * 0.0  # keeps the graph when no box is assigned
    loss_xy = loss_wh = loss_cls = zero
    if gt.numel():
        wh = gt[:, 2:] - gt[:, :2]
        centre = (gt[:, :2] + gt[:, 2:]) / 2
        best = shape_iou(wh, anchor_wh.to(wh.dtype)).argmax(dim=1)
        lvl, a = anchor_level[best], anchor_index[best]
        s = stride_t[lvl]
        gi = torch.minimum((centre[:, 0] / s).floor().long().clamp(min=0), widths[lvl] - 1)
        gj = torch.minimum((centre[:, 1] / s).floor().long().clamp(min=0), heights[lvl] - 1)
        flat = offsets[lvl] + (gj * widths[lvl] + gi) * per_loc[lvl] + a
        # two boxes on one prediction: the later one wins (as in Darknet), counted once
        key = img * total + flat
        uniq, inverse = torch.unique(key, return_inverse=True)
        last = torch.full((uniq.numel(),), -1, dtype=torch.int64, device=device).scatter_reduce(
            0, inverse, torch.arange(key.numel(), device=device), reduce="amax")
        img, flat, best, wh, centre, s, gi, gj, labels = (v[last] for v in (img, flat, best, wh, centre, s, gi, gj,
                                                                                labels))
        obj_target[img, flat] = 1.0
        obj_weight[img, flat] = 1.0
        t_xy = centre / s[:, None] - torch.stack((gi, gj), dim=1).to(centre.dtype)
        t_wh = torch.log(wh / anchor_wh[best].to(wh.dtype))
        scale = (2.0 - wh.prod(1) / float(canvas[0] * canvas[1])) if box_size_weight else torch.ones_like(s)
        pred = box[img, flat]
        loss_xy = (F.binary_cross_entropy_with_logits(pred[:, :2], t_xy, reduction="none").sum(1) * scale).sum() / n
        loss_wh = (0.5 * (pred[:, 2:] - t_wh).pow(2).sum(1) * scale).sum() / n
        cls_target = torch.zeros(len(labels), cls.shape[-1], dtype=cls.dtype, device=device)
        cls_target[torch.arange(len(labels), device=device), labels - 1] = 1.0
        loss_cls = F.binary_cross_entropy_with_logits(cls[img, flat], cls_target, reduction="sum") / n
    loss_obj = (F.binary_cross_entropy_with_logits(obj, obj_target, reduction="none") * obj_weight).sum() / n
    return {"loss_xy": loss_xy * weights["xy"], "loss_wh": loss_wh * weights["wh"],
            "loss_obj": loss_obj * weights["obj"], "loss_cls": loss_cls * weights["cls"]}
