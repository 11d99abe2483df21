"""YOLOv3 (Redmon & Farhadi, 2018), written from the paper and TorchCV's design.

A backbone (Darknet-53 by default) gives three maps (strides 8, 16, 32); ``YOLOv3Head`` predicts,
at every cell and for each of the scale's three anchors, tx, ty, tw, th, objectness and one
logistic score per class. Boxes: centre = (cell + sigmoid(tx, ty)) x stride, size = anchor x
exp(tw, th). Inputs are letterboxed to a square canvas (``LetterboxTransform``). Scores:
sigmoid(objectness) x sigmoid(class); class-wise NMS. Losses: ``losses/yolo_loss.py``.

Labels: ``num_classes`` counts the background like every detector here (COCO: 81); the head has
``num_classes - 1`` class outputs and class output k is label k + 1. ``darknet_weights`` loads
Darknet's ``yolov3.weights`` (80 classes: ``num_classes: 81``, Darknet-53 and the default head);
``darknet53.conv.74`` is the backbone's ``pretrained`` file.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ...registry import MODELS, ConfigError
from ..backbones.darknet import darknet_layers, load_darknet_weights
from ..backbones.features import FeatureBackbone
from ..heads.det_utils import BBOX_XFORM_CLIP, check_loss_weights, check_options
from ..heads.yolo_head import YOLOv3Head
from ..losses.yolo_loss import yolov3_loss
from .dense import DenseDetector
from .letterbox import LetterboxTransform

# yolov3.cfg's anchors (pixels at 416) and which scale uses which, finest scale (stride 8) first
COCO_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
ANCHOR_MASKS = ((0, 1, 2), (3, 4, 5), (6, 7, 8))
LOSS_WEIGHTS = dict(xy=1.0, wh=1.0, obj=1.0, cls=1.0)


def _check_anchors(name: str, anchors, masks, levels: int) -> None:
    for i, a in enumerate(anchors):
        if len(a) != 2 or min(a) <= 0:
            raise ConfigError(f"{name}.anchors.{i}: {a} is not a (width, height) pair of positive pixels")
    if len(masks) != levels:
        raise ConfigError(f"{name}.anchor_masks has {len(masks)} groups but the backbone gives {levels} maps: give "
                          f"one group of anchor indices per map, finest first")
    used = [i for m in masks for i in m]
    bad = [i for i in used if not 0 <= i < len(anchors)]
    if bad or not all(len(m) for m in masks):
        raise ConfigError(f"{name}.anchor_masks {[list(m) for m in masks]}: indices must be in 0..{len(anchors) - 1} "
                          f"and every scale needs at least one anchor")
    if sorted(used) != list(range(len(anchors))):
        raise ConfigError(f"{name}.anchor_masks {[list(m) for m in masks]} must use each of the {len(anchors)} "
                          f"anchors exactly once (a box is assigned to its best anchor's scale)")


@MODELS.register()
class YOLOv3(DenseDetector):
    """Args:
        backbone: a FeatureBackbone tapping three maps, finest first (darknet53 levels 2, 3, 4).
        num_classes: with the background (COCO: 81; the head predicts num_classes - 1).
        anchors: (width, height) pixels of the canvas; anchor_masks: anchor indices per map, finest first.
        size / train_sizes / image_mean / image_std / pad_value: the letterbox input (LetterboxTransform).
        head: a built head (``type: YOLOv3Head``) or its options (``widths``).
        ignore_thresh: predictions overlapping a ground truth more than this get no objectness loss.
        loss_weights: multipliers of ``xy``, ``wh``, ``obj``, ``cls``; box_size_weight: Darknet's
            2 - w*h weighting of the box terms.
        score_thresh, nms_thresh, detections_per_img, topk_candidates (per map): post-processing.
        darknet_weights: a Darknet ``.weights`` file for the whole model (e.g. yolov3.weights).
    """

    label_offset = 1

    def __init__(self, backbone: nn.Module, num_classes: int, anchors: Sequence[Sequence[float]] = COCO_ANCHORS,
                 anchor_masks: Sequence[Sequence[int]] = ANCHOR_MASKS, size: int = 416,
                 train_sizes: Optional[Sequence[int]] = None, image_mean: Sequence[float] = (0.0, 0.0, 0.0),
                 image_std: Sequence[float] = (1.0, 1.0, 1.0), pad_value: float = 0.5, head=None,
                 ignore_thresh: float = 0.5, loss_weights: Optional[Dict[str, float]] = None,
                 box_size_weight: bool = True, score_thresh: float = 0.005, nms_thresh: float = 0.45,
                 detections_per_img: int = 100, topk_candidates: int = 1000, darknet_weights: Optional[str] = None,
                 channels_last: bool = False, fold_bn: bool = True):
        name = type(self).__name__
        if num_classes < 2:
            raise ConfigError(f"{name}.num_classes={num_classes}: count the background too (classes + 1)")
        channels = getattr(backbone, "out_channels", None)
        strides = getattr(backbone, "out_strides", None)
        if not isinstance(channels, (list, tuple)) or strides is None:
            raise ConfigError(f"{name}.backbone: {type(backbone).__name__} must tap feature maps (type: FeatureBackbone "
                              f"with out_indices), finest first")
        _check_anchors(name, anchors, anchor_masks, len(channels))
        counts = [len(m) for m in anchor_masks]
        if not isinstance(head, nn.Module):
            opts = check_options(head, dict(widths=(128, 256, 512)), f"{name}.head")
            head = YOLOv3Head(channels, counts, num_classes - 1, **opts)
        given = getattr(head, "num_anchors", None)
        if given is not None and list(given) != counts:
            raise ConfigError(f"{name}.head predicts {list(given)} anchors per location but anchor_masks give {counts}: "
                              f"make them agree")
        if getattr(head, "num_classes", num_classes - 1) != num_classes - 1:
            raise ConfigError(f"{name}.head predicts {head.num_classes} classes but num_classes={num_classes} means "
                              f"{num_classes - 1} (the background is not predicted)")
        transform = LetterboxTransform(size, train_sizes, image_mean, image_std, pad_value, stride=max(strides))
        super().__init__(backbone, head, transform, num_classes, score_thresh, nms_thresh, detections_per_img,
                         topk_candidates, channels_last, fold_bn)
        self.anchors_per_location = counts
        self.strides = list(strides)
        self.anchor_masks = [list(m) for m in anchor_masks]
        self.register_buffer("anchor_wh", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        level = torch.zeros(len(anchors), dtype=torch.int64)
        index = torch.zeros(len(anchors), dtype=torch.int64)
        for lvl, m in enumerate(anchor_masks):
            for j, k in enumerate(m):
                level[k], index[k] = lvl, j
        self.register_buffer("anchor_level", level, persistent=False)
        self.register_buffer("anchor_index", index, persistent=False)
        self.ignore_thresh = ignore_thresh
        self.loss_weights = check_loss_weights(loss_weights, LOSS_WEIGHTS, f"{name}.loss_weights")
        self.box_size_weight = box_size_weight
        if darknet_weights:
            load_darknet_weights(darknet_layers(self), darknet_weights)

    def make_anchors(self, batch_shape: Tuple[int, int], feats: List[Tensor]) -> Tensor:
        """Anchor boxes centred on every cell, (y, x, anchor) order per map, finest map first."""
        out = []
        for f, s, mask in zip(feats, self.strides, self.anchor_masks):
            h, w = f.shape[-2:]
            ys = (torch.arange(h, device=f.device, dtype=f.dtype) + 0.5) * s
            xs = (torch.arange(w, device=f.device, dtype=f.dtype) + 0.5) * s
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack((xx, yy, xx, yy), dim=-1).reshape(-1, 1, 4)
            wh = self.anchor_wh[mask].to(f.dtype)
            half = torch.cat((-wh / 2, wh / 2), dim=1).reshape(1, -1, 4)
            out.append((centres + half).reshape(-1, 4))
        return torch.cat(out)

    def _decode(self, box: Tensor, anchors: Tensor, strides: Tensor) -> Tensor:
        """tx ty tw th -> xyxy: centre = cell corner + sigmoid(t) x stride, size = anchor x exp(t)."""
        corner = (anchors[..., :2] + anchors[..., 2:]) / 2 - 0.5 * strides[..., None]
        centre = corner + torch.sigmoid(box[..., :2]) * strides[..., None]
        size = (anchors[..., 2:] - anchors[..., :2]) * torch.exp(box[..., 2:].clamp(max=BBOX_XFORM_CLIP))
        return torch.cat((centre - size / 2, centre + size / 2), dim=-1)

    def compute_loss(self, targets, outputs, anchors, num_per_level, grid_sizes):
        for i, t in enumerate(targets):
            lab = t["labels"]
            if lab.numel() and (int(lab.min()) < 1 or int(lab.max()) >= self.num_classes):
                raise ValueError(f"target {i}: labels {lab.tolist()} outside 1..{self.num_classes - 1} (num_classes "
                                 f"{self.num_classes} includes the background 0)")
        strides = torch.repeat_interleave(torch.tensor(self.strides, dtype=anchors.dtype, device=anchors.device),
                                          torch.tensor(num_per_level, device=anchors.device))
        with torch.no_grad():
            pred = self._decode(outputs["box"].detach(), anchors, strides)
        canvas = (grid_sizes[0][0] * self.strides[0], grid_sizes[0][1] * self.strides[0])
        return yolov3_loss(outputs, pred, targets, self.anchor_wh, self.anchor_level, self.anchor_index, grid_sizes,
                           self.strides, self.anchors_per_location, canvas, self.ignore_thresh, self.loss_weights,
                           self.box_size_weight)

    def level_scores(self, outputs: Dict[str, Tensor]) -> Tensor:
        return torch.sigmoid(outputs["obj"]) * torch.sigmoid(outputs["cls"])

    def decode(self, outputs: Dict[str, Tensor], anchors: Tensor, level: int) -> Tensor:
        strides = torch.full((anchors.shape[0],), float(self.strides[level]), dtype=anchors.dtype,
                             device=anchors.device)
        return self._decode(outputs["box"], anchors, strides)


@MODELS.register()
def yolov3_darknet53(num_classes: int = 81, pretrained_backbone: Optional[str] = None, norm: str = "bn",
                     frozen_stages: int = -1, **kwargs) -> YOLOv3:
    """YOLOv3 with Darknet-53 as in yolov3.cfg (416 px, COCO anchors). ``pretrained_backbone``:
    ``darknet53.conv.74`` (Darknet) or a .pth; ``darknet_weights``: ``yolov3.weights``."""
    backbone = FeatureBackbone("darknet53", out_indices=(2, 3, 4), pretrained=pretrained_backbone, norm=norm,
                               frozen_stages=frozen_stages)
    return YOLOv3(backbone, num_classes, **kwargs)
