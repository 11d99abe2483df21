"""The skeleton every single-stage (dense) detector shares: RetinaNet, FCOS, SSD and YOLOv3.

    images -> transform (normalise, resize, pad) -> backbone (+ neck) -> feature maps
           -> head: per anchor (or point) class logits, box codes, ...   (N, sum_l H_l W_l A_l, K)
           -> anchors (or default boxes / points) for the same positions (sum_l H_l W_l A_l, 4)
    train: a model-specific assignment of ground truth to anchors + losses -> {loss_name: tensor}
    eval:  per level, the top-k scores above ``score_thresh``; decode those boxes, clip; class-wise
           NMS over the levels; keep ``detections_per_img``; map back to the input image.

A subclass sets ``anchor_generator`` (returns one (A, 4) tensor for the batch: every image has the
same anchors), ``anchors_per_location`` and implements ``compute_loss``, ``level_scores`` and
``decode``; SSD overrides ``postprocess`` (per-class top-k over all levels, softmax scores).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..backbones.fold_bn import fold_conv_bn
from ..heads.dense_utils import clip_to_image, finish_detections, topk_candidates
from ..heads.det_utils import check_targets


class DenseDetector(nn.Module):
    """Args:
        backbone: returns an ordered dict of feature maps, finest first.
        head: returns a dict of (N, total anchors, K) tensors.
        transform: ``DetInputTransform`` or ``LetterboxTransform`` (forward + postprocess).
        num_classes: including the background class 0.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: post-processing.
        channels_last: run backbone and head in NHWC memory format (faster convolutions on CPUs
            for some networks; results equal up to float rounding).
        fold_bn: apply frozen / eval-mode BatchNorms inside the convolutions before them
            (``backbones/fold_bn.py``; state_dict keys unchanged).
    """

    label_offset = 0  # added to a class channel index to give the label (YOLO has no background channel)

    def __init__(self, backbone: nn.Module, head: nn.Module, transform: nn.Module, num_classes: int,
                 score_thresh: float, nms_thresh: float, detections_per_img: int, topk_candidates: int,
                 channels_last: bool = False, fold_bn: bool = True):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.transform = transform
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.channels_last = channels_last
        if fold_bn:
            fold_conv_bn(getattr(backbone, "body", backbone))
            fold_conv_bn(head)
        if channels_last:
            self.to(memory_format=torch.channels_last)  # 4-D weights; load_state_dict keeps the layout

    # ---- what a detector defines ------------------------------------------------------------------
    anchors_per_location: Sequence[int]

    def make_anchors(self, batch_shape: Tuple[int, int], feats: List[Tensor]) -> Tensor:
        return self.anchor_generator(batch_shape, feats, 1)[0]

    def compute_loss(self, targets: List[Dict[str, Tensor]], outputs: Dict[str, Tensor], anchors: Tensor,
                     num_per_level: List[int], grid_sizes: List[Tuple[int, int]]) -> Dict[str, Tensor]:
        """The named losses; ``targets`` are in the transformed batch's pixels."""
        raise NotImplementedError

    def level_scores(self, outputs: Dict[str, Tensor]) -> Tensor:
        """One image, one level: (A_l, C) scores in [0, 1]."""
        raise NotImplementedError

    def decode(self, outputs: Dict[str, Tensor], anchors: Tensor, level: int) -> Tensor:
        """Boxes (K, 4) of the selected anchors: ``outputs`` rows and ``anchors`` are already selected."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------------
    def postprocess(self, outputs: Dict[str, Tensor], anchors: Tensor, num_per_level: List[int],
                    image_sizes: List[Tuple[int, int]]) -> List[Dict[str, Tensor]]:
        split = {k: v.split(num_per_level, dim=1) for k, v in outputs.items()}
        level_anchors = anchors.split(num_per_level)
        results = []
        for i, size in enumerate(image_sizes):
            boxes, scores, labels = [], [], []
            for lvl, anchors_l in enumerate(level_anchors):
                out_l = {k: v[lvl][i] for k, v in split.items()}
                s = self.level_scores(out_l)
                num_classes = s.shape[-1]
                s, idx = topk_candidates(s, self.score_thresh, self.topk_candidates)
                anchor_idx = torch.div(idx, num_classes, rounding_mode="floor")
                b = self.decode({k: v[anchor_idx] for k, v in out_l.items()}, anchors_l[anchor_idx], lvl)
                boxes.append(clip_to_image(b, size))
                scores.append(s)
                labels.append(idx % num_classes + self.label_offset)
            results.append(finish_detections(torch.cat(boxes), torch.cat(scores), torch.cat(labels),
                                             self.nms_thresh, self.detections_per_img))
        return results

    def num_per_level(self, feats: List[Tensor]) -> List[int]:
        return [f.shape[-2] * f.shape[-1] * a for f, a in zip(feats, self.anchors_per_location)]

    def forward(self, images: List[Tensor], targets: Optional[List[Dict[str, Tensor]]] = None):
        if self.training:
            check_targets(type(self).__name__, targets)
        # under tracing (export) the sizes stay traced values, so the exported graph rescales boxes
        # to whatever image it is given instead of the example's size
        original = [tuple(img.shape[-2:]) if torch.jit.is_tracing() else tuple(int(s) for s in img.shape[-2:])
                    for img in images]
        batch, sizes, targets = self.transform(images, targets)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        feats = list(self.backbone(batch).values())
        if len(feats) != len(self.anchors_per_location):
            raise ValueError(f"{type(self).__name__}: the backbone gives {len(feats)} feature maps but anchors are "
                             f"defined for {len(self.anchors_per_location)}")
        outputs = self.head(feats)
        anchors = self.make_anchors(tuple(batch.shape[-2:]), feats)
        num_per_level = self.num_per_level(feats)
        if self.training:
            grid_sizes = [(int(f.shape[-2]), int(f.shape[-1])) for f in feats]
            return self.compute_loss(targets, outputs, anchors, num_per_level, grid_sizes)
        results = self.postprocess(outputs, anchors, num_per_level, sizes)
        return self.transform.postprocess(results, sizes, original)
