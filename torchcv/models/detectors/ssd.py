"""SSD: default boxes on several feature maps of one fixed-size input, softmax classes, smooth-L1
boxes, hard negative mining; SSD300-VGG16 and SSDlite320-MobileNetV3-Large as in torchvision.

The state_dict layout is torchvision's (``backbone.features.*``, ``backbone.extra.*``,
``head.classification_head.module_list.*`` ...): its checkpoints load directly and give the same
detections. Loss names: ``loss_classifier`` and ``loss_box_reg`` for torchvision's
``classification`` and ``bbox_regression``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS, ConfigError
from ..backbones.ssd_extractors import SSDLiteMobileNetExtractor, SSDVGGExtractor
from ..heads.dense_utils import DefaultBoxGenerator, SSDMatcher, clip_to_image, finish_detections, match_anchors
from ..heads.det_utils import BoxCoder
from ..heads.ssd_head import SSDHead, SSDLiteHead
from ..losses.dense_losses import ssd_loss
from .dense import DenseDetector
from .det_transform import DetInputTransform


@MODELS.register()
class SSD(DenseDetector):
    """Args:
        backbone: returns one feature map per default-box group and has ``out_channels`` (a list):
            ``SSDVGGExtractor``, ``SSDLiteMobileNetExtractor`` or any such module.
        num_classes: softmax classes, background (0) included.
        size: [width, height] every image is resized to (torchvision's order).
        aspect_ratios: one group per feature map (each ratio r adds r and 1/r boxes to the two
            square ones); scales / min_ratio / max_ratio / steps / clip: the default boxes
            (DefaultBoxGenerator).
        head: ``ssd`` (3x3 convs), ``ssdlite`` (depthwise + 1x1) or a built head.
        iou_thresh: matching threshold; positive_fraction: 1 positive for every
            (1 - f) / f hard negatives.
        score_thresh, nms_thresh, detections_per_img, topk_candidates (per class): post-processing.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, size: Sequence[int] = (300, 300),
                 aspect_ratios: Sequence[Sequence[float]] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
                 scales: Optional[Sequence[float]] = None, min_ratio: float = 0.15, max_ratio: float = 0.9,
                 steps: Optional[Sequence[int]] = None, clip: bool = True,
                 image_mean: Sequence[float] = (0.485, 0.456, 0.406), image_std: Sequence[float] = (0.229, 0.224, 0.225),
                 head="ssd", score_thresh: float = 0.01, nms_thresh: float = 0.45, detections_per_img: int = 200,
                 iou_thresh: float = 0.5, topk_candidates: int = 400, positive_fraction: float = 0.25,
                 channels_last: bool = False, fold_bn: bool = True):
        name = type(self).__name__
        if num_classes < 2:
            raise ConfigError(f"{name}.num_classes={num_classes}: count the background too (classes + 1)")
        if len(size) != 2:
            raise ConfigError(f"{name}.size: give [width, height], got {size}")
        if not 0 < positive_fraction < 1:
            raise ConfigError(f"{name}.positive_fraction={positive_fraction}: must be in (0, 1)")
        boxes = DefaultBoxGenerator(aspect_ratios, min_ratio, max_ratio, scales, steps, clip)
        channels = getattr(backbone, "out_channels", None)
        if not isinstance(channels, (list, tuple)):
            raise ConfigError(f"{name}.backbone: {type(backbone).__name__} must have out_channels (one per feature "
                              f"map), e.g. SSDVGGExtractor or SSDLiteMobileNetExtractor")
        if len(channels) != len(boxes.aspect_ratios):
            raise ConfigError(f"{name}.aspect_ratios has {len(boxes.aspect_ratios)} groups but the backbone gives "
                              f"{len(channels)} feature maps: give one group per feature map")
        counts = boxes.num_anchors_per_location()
        if isinstance(head, str):
            if head not in ("ssd", "ssdlite"):
                raise ConfigError(f"{name}.head: '{head}' must be ssd, ssdlite or a built head (type: ...)")
            head = (SSDHead if head == "ssd" else SSDLiteHead)(channels, counts, num_classes)
        given = getattr(head, "num_anchors", None)
        if given is not None and list(given) != counts:
            raise ConfigError(f"{name}.head predicts {list(given)} default boxes per location but aspect_ratios give "
                              f"{counts} (2 + 2 x ratios per map): make them agree")
        transform = DetInputTransform(min(size), max(size), image_mean, image_std, size_divisible=1,
                                      fixed_size=(size[1], size[0]))
        super().__init__(backbone, head, transform, num_classes, score_thresh, nms_thresh, detections_per_img,
                         topk_candidates, channels_last, fold_bn)
        self.anchor_generator = boxes
        self.anchors_per_location = counts
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.matcher = SSDMatcher(iou_thresh)
        self.neg_to_pos_ratio = (1.0 - positive_fraction) / positive_fraction
        self.size = list(size)

    def make_anchors(self, batch_shape: Tuple[int, int], feats: List[Tensor]) -> Tensor:
        return self.anchor_generator(batch_shape, feats)

    def compute_loss(self, targets, outputs, anchors, num_per_level, grid_sizes):
        matched = match_anchors(self.matcher, anchors, targets)
        return ssd_loss(outputs["cls_logits"], outputs["bbox_regression"], anchors, matched, targets, self.box_coder,
                        self.neg_to_pos_ratio)

    def postprocess(self, outputs: Dict[str, Tensor], anchors: Tensor, num_per_level: List[int],
                    image_sizes: List[Tuple[int, int]]) -> List[Dict[str, Tensor]]:
        """Softmax scores; per foreground class, the ``topk_candidates`` best above ``score_thresh``
        over all maps; class-wise NMS."""
        scores_all = F.softmax(outputs["cls_logits"], dim=-1)
        results = []
        for deltas, scores, size in zip(outputs["bbox_regression"], scores_all, image_sizes):
            boxes = clip_to_image(self.box_coder.decode(deltas, anchors).reshape(-1, 4), size)
            fg = scores[:, 1:].t()  # (classes - 1, anchors)
            k = min(self.topk_candidates, fg.shape[1])
            top, idx = fg.topk(k, dim=1)  # = thresholding first, then top-k: the best k contain all kept ones
            keep = top > self.score_thresh
            labels = torch.arange(1, fg.shape[0] + 1, device=fg.device)[:, None].expand_as(idx)
            results.append(finish_detections(boxes[idx[keep]], top[keep], labels[keep], self.nms_thresh,
                                             self.detections_per_img))
        return results


# ---- named variants with torchvision's settings --------------------------------------------------
@MODELS.register()
def ssd300_vgg16(num_classes: int = 91, pretrained_backbone: Optional[str] = None,
                 trainable_layers: Optional[int] = None, **kwargs) -> SSD:
    """torchvision's ssd300_vgg16: VGG16 + extras, 8732 default boxes on 300x300 inputs,
    Caffe-style normalisation (mean of 0-255 pixels, std 1/255). ``trainable_layers`` defaults to
    4 with a pretrained backbone, 5 without (torchvision's rule)."""
    if trainable_layers is None:
        trainable_layers = 4 if pretrained_backbone else 5
    backbone = SSDVGGExtractor("vgg16", pretrained_backbone, highres=False, trainable_layers=trainable_layers)
    defaults = dict(size=(300, 300), aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                    scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300],
                    image_mean=[0.48235, 0.45882, 0.40784], image_std=[1.0 / 255.0] * 3)
    return SSD(backbone, num_classes, **{**defaults, **kwargs})


@MODELS.register()
def ssdlite320_mobilenet_v3_large(num_classes: int = 91, pretrained_backbone: Optional[str] = None,
                                  trainable_layers: int = 6, width_mult: float = 1.0, **kwargs) -> SSD:
    """torchvision's ssdlite320_mobilenet_v3_large: 320x320 inputs, six maps with [2, 3] ratios,
    scales 0.2 .. 0.95, BatchNorm eps 0.001 / momentum 0.03, reduced tail without pretrained weights."""
    backbone = SSDLiteMobileNetExtractor("mobilenet_v3_large", pretrained_backbone, trainable_layers,
                                         width_mult=width_mult)
    defaults = dict(size=(320, 320), aspect_ratios=[[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95, head="ssdlite",
                    score_thresh=0.001, nms_thresh=0.55, detections_per_img=300, topk_candidates=300,
                    image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return SSD(backbone, num_classes, **{**defaults, **kwargs})
