"""The RoI heads of two-stage detectors: a box branch plus optional instance branches.

The box branch (pooler, ``box_head``, ``box_predictor``) samples proposals in training and turns
them into detections in inference. Instance branches (``MaskBranch``, ``KeypointBranch`` ...) each
own their pooler, head, predictor, loss and post-processing: in training they learn from the
positive proposals (with the ground truth each matched), in inference they run on the final
detections and add their outputs (``masks``, ``keypoints`` ...) to them.

A branch is selectable from YAML (``roi_branches: [{type: MaskBranch, ...}]``); its modules are
attached to the RoI heads as ``<name>_roi_pool``, ``<name>_head``, ``<name>_predictor``, which is
torchvision's state_dict layout (``roi_heads.mask_head...``, ``roi_heads.keypoint_predictor...``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ..losses.det_losses import fastrcnn_loss
from .det_utils import BalancedSampler, BoxCoder, Matcher, clip_boxes, keep_large, split_per_image


class RoIBranch:
    """Base of instance branches. ``build`` creates the modules once the detector knows the feature
    channels, class count and feature map names; the RoI heads attach them under ``name``."""

    name = "branch"
    target_keys: Tuple[str, ...] = ()     # what a training target must hold for this branch

    def build(self, in_channels: int, num_classes: int, featmap_names: Sequence[str]) -> Dict[str, nn.Module]:
        raise NotImplementedError

    def bind(self, modules: Dict[str, nn.Module]) -> None:
        self.roi_pool = modules["roi_pool"]
        self.head = modules["head"]
        self.predictor = modules["predictor"]

    def check_targets(self, targets: List[Dict[str, Tensor]]) -> None:
        for i, t in enumerate(targets):
            for key in self.target_keys:
                if key not in t:
                    raise ValueError(f"{type(self).__name__}: target {i} has no '{key}'; the dataset must provide "
                                     f"it (e.g. with_{key}: true) or remove the branch")

    def loss(self, features: Dict[str, Tensor], proposals: List[Tensor], image_sizes: List[Tuple[int, int]],
             targets: List[Dict[str, Tensor]], matched: List[Tensor]) -> Dict[str, Tensor]:
        """Losses from positive ``proposals`` and the index of the ground truth each matched."""
        raise NotImplementedError

    def predict(self, features: Dict[str, Tensor], results: List[Dict[str, Tensor]],
                image_sizes: List[Tuple[int, int]]) -> None:
        """Add this branch's outputs to each image's detections (in place)."""
        raise NotImplementedError


class RoIHeads(nn.Module):
    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, bbox_reg_weights: Optional[Tuple[float, ...]] = None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 branches: Sequence[Tuple[RoIBranch, Dict[str, nn.Module]]] = ()):
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.box_coder = BoxCoder(bbox_reg_weights or (10.0, 10.0, 5.0, 5.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=False)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.branches: List[RoIBranch] = []
        for branch, modules in branches:
            if branch.name in {b.name for b in self.branches}:
                raise ValueError(f"RoIHeads: two branches named '{branch.name}'")
            for role, module in modules.items():
                setattr(self, f"{branch.name}_{role}", module)
            branch.bind(modules)
            self.branches.append(branch)

    @property
    def has_mask(self) -> bool:
        return any(b.name == "mask" for b in self.branches)

    @property
    def has_keypoint(self) -> bool:
        return any(b.name == "keypoint" for b in self.branches)

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
        boxes_all = split_per_image(self.box_coder.decode(deltas, torch.cat(proposals)), counts)
        scores_all = split_per_image(F.softmax(logits, -1), counts)
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
            for branch in self.branches:
                branch.check_targets(targets)
            proposals, matched_idxs, labels, reg_targets = self._sample(proposals, targets)
        x = self.box_head(self.box_roi_pool(features, proposals, image_sizes))
        logits, deltas = self.box_predictor(x)
        if self.training:
            cls_loss, box_loss = fastrcnn_loss(logits, deltas, labels, reg_targets)
            losses.update(loss_classifier=cls_loss, loss_box_reg=box_loss)
            if self.branches:  # instance branches learn from the positive proposals
                pos_props, pos_matched = [], []
                for p, lab, idx in zip(proposals, labels, matched_idxs):
                    pos = torch.where(lab > 0)[0]
                    pos_props.append(p[pos])
                    pos_matched.append(idx[pos])
                for branch in self.branches:
                    losses.update(branch.loss(features, pos_props, image_sizes, targets, pos_matched))
        else:
            results = self._postprocess(logits, deltas, proposals, image_sizes)
            for branch in self.branches:
                branch.predict(features, results, image_sizes)
        return results, losses
