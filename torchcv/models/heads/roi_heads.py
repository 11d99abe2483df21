"""RoI heads: sample proposals against ground truth, pool features per RoI (``torchcv.ops``),
classify and refine boxes, predict masks, and turn scores into final detections."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ..losses.det_losses import fastrcnn_loss, maskrcnn_loss
from .det_utils import BalancedSampler, BoxCoder, Matcher, clip_boxes, keep_large


class RoIHeads(nn.Module):
    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, bbox_reg_weights: Optional[Tuple[float, ...]] = None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 mask_roi_pool: Optional[nn.Module] = None, mask_head: Optional[nn.Module] = None,
                 mask_predictor: Optional[nn.Module] = None):
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor
        self.box_coder = BoxCoder(bbox_reg_weights or (10.0, 10.0, 5.0, 5.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=False)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    @property
    def has_mask(self) -> bool:
        return self.mask_predictor is not None

    # ---- training: which proposals to learn from -----------------------------------------------
    def _sample(self, proposals: List[Tensor], targets: List[Dict[str, Tensor]]):
        out_props, matched_idxs, labels, reg_targets = [], [], [], []
        for props, t in zip(proposals, targets):
            gt_boxes, gt_labels = t["boxes"].to(props.dtype), t["labels"]
            props = torch.cat([props, gt_boxes])  # ground truth is always a candidate
            if gt_boxes.numel() == 0:
                idx = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                lab = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                gt_boxes = torch.zeros((1, 4), dtype=props.dtype, device=props.device)
            else:
                m = self.matcher(ops.box_iou(gt_boxes, props))
                idx = m.clamp(min=0)
                lab = gt_labels[idx].to(torch.int64)
                lab[m == Matcher.BELOW] = 0
                lab[m == Matcher.BETWEEN] = -1
            pos, neg = self.sampler([lab])
            keep = torch.where(pos[0] | neg[0])[0]
            props, idx, lab = props[keep], idx[keep], lab[keep]
            out_props.append(props)
            matched_idxs.append(idx)
            labels.append(lab)
            reg_targets.append(self.box_coder.encode(gt_boxes[idx], props))
        return out_props, matched_idxs, labels, reg_targets

    # ---- inference: scores -> detections -------------------------------------------------------
    def _postprocess(self, logits: Tensor, deltas: Tensor, proposals: List[Tensor],
                     image_sizes: List[Tuple[int, int]]):
        num_classes = logits.shape[-1]
        counts = [p.shape[0] for p in proposals]
        boxes_all = self.box_coder.decode(deltas, torch.cat(proposals)).split(counts, 0)
        scores_all = F.softmax(logits, -1).split(counts, 0)
        results = []
        for boxes, scores, size in zip(boxes_all, scores_all, image_sizes):
            boxes = clip_boxes(boxes, size)
            labels = torch.arange(num_classes, device=logits.device).view(1, -1).expand_as(scores)
            boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = keep_large(boxes, 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results

    def forward(self, features: Dict[str, Tensor], proposals: List[Tensor], image_sizes: List[Tuple[int, int]],
                targets: Optional[List[Dict[str, Tensor]]] = None):
        losses: Dict[str, Tensor] = {}
        results: List[Dict[str, Tensor]] = []
        if self.training:
            if targets is None:
                raise ValueError("RoIHeads: targets are required in training mode")
            proposals, matched_idxs, labels, reg_targets = self._sample(proposals, targets)
        x = self.box_head(self.box_roi_pool(features, proposals, image_sizes))
        logits, deltas = self.box_predictor(x)
        if self.training:
            cls_loss, box_loss = fastrcnn_loss(logits, deltas, labels, reg_targets)
            losses.update(loss_classifier=cls_loss, loss_box_reg=box_loss)
        else:
            results = self._postprocess(logits, deltas, proposals, image_sizes)

        if self.has_mask:
            if self.training:
                mask_props, pos_matched = [], []
                for p, lab, idx in zip(proposals, labels, matched_idxs):
                    pos = torch.where(lab > 0)[0]
                    mask_props.append(p[pos])
                    pos_matched.append(idx[pos])
            else:
                mask_props = [r["boxes"] for r in results]
            x = self.mask_head(self.mask_roi_pool(features, mask_props, image_sizes))
            mask_logits = self.mask_predictor(x)
            if self.training:
                gt_masks = [t["masks"] for t in targets]
                gt_labels = [t["labels"] for t in targets]
                losses["loss_mask"] = maskrcnn_loss(mask_logits, mask_props, gt_masks, gt_labels, pos_matched)
            else:
                probs = mask_logits.sigmoid()
                counts = [r["labels"].shape[0] for r in results]
                labels_cat = torch.cat([r["labels"] for r in results])
                probs = probs[torch.arange(probs.shape[0], device=labels_cat.device), labels_cat][:, None]
                for r, m in zip(results, probs.split(counts, dim=0)):
                    r["masks"] = m
        return results, losses
