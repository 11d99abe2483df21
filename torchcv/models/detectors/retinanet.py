"""RetinaNet (focal loss, anchors on P3-P7) and FCOS (anchor-free: one point per location, centre
sampling, GIoU, centre-ness) on a FeatureBackbone + FPN.

The state_dict layout is torchvision's (``backbone.body.*``, ``backbone.fpn.*``, ``head.*``), so
``retinanet_resnet50_fpn`` / ``fcos_resnet50_fpn`` checkpoints load directly and give the same
detections. Loss names: ``loss_classifier``, ``loss_box_reg`` (+ ``loss_centerness``) for
torchvision's ``classification``, ``bbox_regression`` (+ ``bbox_ctrness``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ...registry import MODELS, ConfigError
from ..backbones.features import FeatureBackbone, FrozenBatchNorm2d
from ..heads.dense_utils import BoxLinearCoder, match_anchors
from ..heads.det_utils import AnchorGenerator, BoxCoder, Matcher, check_loss_weights, check_options, is_number
from ..heads.fcos_head import FCOSHead
from ..heads.retina_head import RetinaNetHead
from ..losses.dense_losses import fcos_loss, retinanet_loss
from ..necks.fpn import BackboneWithFPN
from .dense import DenseDetector
from .det_transform import DetInputTransform

# torchvision's RetinaNet anchors: three scales per octave (2^0, 2^1/3, 2^2/3) of 32 .. 512
RETINANET_ANCHOR_SIZES = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
FCOS_ANCHOR_SIZES = ((8,), (16,), (32,), (64,), (128,))  # one point per location, of the level's stride


def _fpn_backbone(name: str, backbone: nn.Module, neck, return_layers) -> BackboneWithFPN:
    if isinstance(neck, nn.Module):
        return BackboneWithFPN(backbone, fpn=neck, return_layers=return_layers)
    opts = check_options(neck, dict(out_channels=256, extra="p6p7"), f"{name}.neck")
    return BackboneWithFPN(backbone, fpn_cfg=opts, return_layers=return_layers)


def _anchor_generator(name: str, sizes, aspect_ratios, levels: int) -> AnchorGenerator:
    sizes = [tuple(s) if isinstance(s, (list, tuple)) else (s,) for s in sizes]
    if aspect_ratios and not isinstance(aspect_ratios[0], (list, tuple)):
        aspect_ratios = [tuple(aspect_ratios)] * len(sizes)
    if len(sizes) != levels:
        raise ConfigError(f"{name}.anchor_sizes has {len(sizes)} groups but the FPN gives {levels} levels: give one "
                          f"group of sizes per level")
    if len(aspect_ratios) != levels:
        raise ConfigError(f"{name}.aspect_ratios has {len(aspect_ratios)} groups for {levels} levels")
    gen = AnchorGenerator(sizes, aspect_ratios)
    counts = gen.num_anchors_per_location()
    if len(set(counts)) != 1:
        raise ConfigError(f"{name}: anchors per location differ between levels ({counts} = sizes x aspect ratios); "
                          f"the head is shared by every level, so give each level as many sizes x ratios")
    return gen


def _check_head(name: str, head: nn.Module, anchors_per_location: int, key: str) -> None:
    n = getattr(head, "num_anchors", None)
    if n is not None and n != anchors_per_location:
        raise ConfigError(f"{name}.head predicts {n} anchors per location but the anchors give "
                          f"{anchors_per_location} ({key}); make head.num_anchors = {anchors_per_location} or "
                          f"change the anchors")


def _check_focal(name: str, alpha: float, gamma: float) -> None:
    if not (is_number(alpha) and alpha <= 1):
        raise ConfigError(f"{name}.focal_alpha={alpha!r}: give the positives' weight in [0, 1], or -1 for no weighting")
    if not (is_number(gamma) and gamma >= 0):
        raise ConfigError(f"{name}.focal_gamma={gamma!r}: give a number >= 0 (0 = plain binary cross-entropy)")


def weigh_losses(losses: Dict[str, Tensor], weights: Dict[str, float]) -> Dict[str, Tensor]:
    """Each named loss times its weight (weights of 1 leave the tensor untouched: torchvision parity)."""
    return {k: v if weights[k] == 1.0 else v * weights[k] for k, v in losses.items()}


@MODELS.register()
class RetinaNet(DenseDetector):
    """Args:
        backbone: a built FeatureBackbone (its taps, finest first, feed the FPN).
        num_classes: class logits per anchor, background included (torchvision: 91 for COCO).
        neck: a built FPN or FPN options (``out_channels`` 256, ``extra`` p6p7 = P6/P7 from P5;
            p6p7_c5 from C5).
        return_layers: backbone children that feed the FPN (default: the backbone's taps).
        min_size / max_size / image_mean / image_std / size_divisible: the input transform.
        anchor_sizes: one group per pyramid level; aspect_ratios: one group or one per level.
        head: a built head (``type: RetinaNetHead``) or its options (``num_convs``, ``group_norm``,
            ``prior_probability``).
        box_loss: l1 (RetinaNet), smooth_l1 or giou (torchvision's v2).
        fg_iou_thresh / bg_iou_thresh: anchor matching; score_thresh, nms_thresh,
            detections_per_img, topk_candidates (per level): post-processing.
        channels_last, fold_bn: see DenseDetector.
        focal_alpha / focal_gamma: the sigmoid focal loss' positive weight (-1: none) and focusing
            exponent (torchvision's 0.25 and 2).
        loss_weights: multipliers of ``loss_classifier`` and ``loss_box_reg`` (default 1 each: torchvision's
            losses). A larger classifier weight gives a backbone trained from scratch more of the class
            signal (the focal loss' gradient is small while the class scores are still flat).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, neck=None, return_layers: Optional[list] = None,
                 min_size=800, max_size: int = 1333, image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), size_divisible: int = 32,
                 anchor_sizes=RETINANET_ANCHOR_SIZES, aspect_ratios=(0.5, 1.0, 2.0), head=None,
                 box_loss: str = "l1", fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.4,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 300,
                 topk_candidates: int = 1000, channels_last: bool = False, fold_bn: bool = True,
                 loss_weights: Optional[Dict[str, float]] = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0):
        name = type(self).__name__
        if num_classes < 2:
            raise ConfigError(f"{name}.num_classes={num_classes}: count the background too (classes + 1)")
        _check_focal(name, focal_alpha, focal_gamma)
        if box_loss not in ("l1", "smooth_l1", "giou"):
            raise ConfigError(f"{name}.box_loss: '{box_loss}' must be one of l1, smooth_l1, giou")
        features = _fpn_backbone(name, backbone, neck, return_layers)
        anchors = _anchor_generator(name, anchor_sizes, aspect_ratios, features.num_levels)
        a = anchors.num_anchors_per_location()[0]
        if not isinstance(head, nn.Module):
            opts = check_options(head, dict(num_convs=4, group_norm=False, prior_probability=0.01), f"{name}.head")
            head = RetinaNetHead(features.out_channels, a, num_classes, **opts)
        _check_head(name, head, a, "anchor_sizes x aspect_ratios")
        transform = DetInputTransform(min_size, max_size, image_mean, image_std, size_divisible)
        super().__init__(features, head, transform, num_classes, score_thresh, nms_thresh, detections_per_img,
                         topk_candidates, channels_last, fold_bn)
        self.anchor_generator = anchors
        self.anchors_per_location = anchors.num_anchors_per_location()
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=True)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.box_loss = box_loss
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.loss_weights = check_loss_weights(loss_weights, dict(loss_classifier=1.0, loss_box_reg=1.0),
                                          f"{name}.loss_weights")

    def compute_loss(self, targets, outputs, anchors, num_per_level, grid_sizes):
        matched = match_anchors(self.matcher, anchors, targets)
        losses = retinanet_loss(outputs["cls_logits"], outputs["bbox_regression"], anchors, matched, targets,
                                self.box_coder, self.box_loss, self.focal_alpha, self.focal_gamma)
        return weigh_losses(losses, self.loss_weights)

    def level_scores(self, outputs: Dict[str, Tensor]) -> Tensor:
        return torch.sigmoid(outputs["cls_logits"])

    def decode(self, outputs: Dict[str, Tensor], anchors: Tensor, level: int) -> Tensor:
        return self.box_coder.decode(outputs["bbox_regression"], anchors).reshape(-1, 4)


@MODELS.register()
class FCOS(DenseDetector):
    """Args (see RetinaNet for the shared ones):
        anchor_sizes: one size per level, equal to the level's stride (the "anchor" is the point at
            its centre); FCOS' assignment scales (4x / 8x the size) follow from it.
        center_sampling_radius: a location is positive when within this many strides of a box's
            centre (and inside the box, and the box's largest side distance fits the level).
        head: a built head (``type: FCOSHead``) or its options (``num_convs``, ``norm_groups``).
        loss_weights: multipliers of ``loss_classifier``, ``loss_box_reg``, ``loss_centerness``;
        focal_alpha / focal_gamma: as RetinaNet's.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, neck=None, return_layers: Optional[list] = None,
                 min_size=800, max_size: int = 1333, image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), size_divisible: int = 32,
                 anchor_sizes=FCOS_ANCHOR_SIZES, head=None, center_sampling_radius: float = 1.5,
                 score_thresh: float = 0.2, nms_thresh: float = 0.6, detections_per_img: int = 100,
                 topk_candidates: int = 1000, channels_last: bool = False, fold_bn: bool = True,
                 loss_weights: Optional[Dict[str, float]] = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0):
        name = type(self).__name__
        if num_classes < 2:
            raise ConfigError(f"{name}.num_classes={num_classes}: count the background too (classes + 1)")
        _check_focal(name, focal_alpha, focal_gamma)
        features = _fpn_backbone(name, backbone, neck, return_layers)
        sizes = [tuple(s) if isinstance(s, (list, tuple)) else (s,) for s in anchor_sizes]
        if any(len(s) != 1 for s in sizes):
            raise ConfigError(f"{name}.anchor_sizes: FCOS has one point per location, give one size per level "
                              f"(the level's stride), got {list(anchor_sizes)}")
        anchors = _anchor_generator(name, sizes, [(1.0,)] * len(sizes), features.num_levels)
        if not isinstance(head, nn.Module):
            opts = check_options(head, dict(num_convs=4, norm_groups=32), f"{name}.head")
            head = FCOSHead(features.out_channels, 1, num_classes, **opts)
        _check_head(name, head, 1, "FCOS predicts one box per location")
        transform = DetInputTransform(min_size, max_size, image_mean, image_std, size_divisible)
        super().__init__(features, head, transform, num_classes, score_thresh, nms_thresh, detections_per_img,
                         topk_candidates, channels_last, fold_bn)
        self.anchor_generator = anchors
        self.anchors_per_location = anchors.num_anchors_per_location()
        self.box_coder = BoxLinearCoder(normalize_by_size=True)
        self.center_sampling_radius = center_sampling_radius
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.loss_weights = check_loss_weights(loss_weights, dict(loss_classifier=1.0, loss_box_reg=1.0,
                                                             loss_centerness=1.0), f"{name}.loss_weights")

    def match(self, anchors: Tensor, targets: List[Dict[str, Tensor]], num_per_level: List[int]) -> List[Tensor]:
        """Per image, the matched box of every location: inside the box and within the centre
        region, with the box's largest side distance in the level's range; ties go to the smallest box."""
        centres = (anchors[:, :2] + anchors[:, 2:]) / 2
        sizes = anchors[:, 2] - anchors[:, 0]
        lower = sizes * 4
        lower[: num_per_level[0]] = 0
        upper = sizes * 8
        upper[-num_per_level[-1]:] = float("inf")
        out = []
        for t in targets:
            gt = t["boxes"]
            if gt.numel() == 0:
                out.append(torch.full((anchors.size(0),), -1, dtype=torch.int64, device=anchors.device))
                continue
            gt_centres = (gt[:, :2] + gt[:, 2:]) / 2
            match = (centres[:, None, :] - gt_centres[None, :, :]).abs_().max(dim=2).values \
                < self.center_sampling_radius * sizes[:, None]
            x, y = centres.unsqueeze(dim=2).unbind(dim=1)
            x0, y0, x1, y1 = gt.unsqueeze(dim=0).unbind(dim=2)
            dist = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)
            match &= dist.min(dim=2).values > 0
            dist = dist.max(dim=2).values
            match &= (dist > lower[:, None]) & (dist < upper[:, None])
            areas = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
            score = match.to(torch.float32) * (1e8 - areas[None, :])  # the smallest matching box wins
            best, idx = score.max(dim=1)
            idx[best < 1e-5] = -1
            out.append(idx)
        return out

    def compute_loss(self, targets, outputs, anchors, num_per_level, grid_sizes):
        matched = self.match(anchors, targets, num_per_level)
        losses = fcos_loss(outputs["cls_logits"], outputs["bbox_regression"], outputs["bbox_ctrness"], anchors,
                           matched, targets, self.box_coder, self.focal_alpha, self.focal_gamma)
        return weigh_losses(losses, self.loss_weights)

    def level_scores(self, outputs: Dict[str, Tensor]) -> Tensor:
        return torch.sqrt(torch.sigmoid(outputs["cls_logits"]) * torch.sigmoid(outputs["bbox_ctrness"]))

    def decode(self, outputs: Dict[str, Tensor], anchors: Tensor, level: int) -> Tensor:
        return self.box_coder.decode(outputs["bbox_regression"], anchors)


# ---- named variants with torchvision's settings --------------------------------------------------
def _resnet_fpn_backbone(arch: str, trainable_layers: int, norm: str, pretrained: Optional[str]) -> FeatureBackbone:
    if not 0 <= trainable_layers <= 5:
        raise ConfigError(f"trainable_layers={trainable_layers}: use 0 (all frozen) .. 5 (all trainable)")
    # levels 0 = conv1, 1..4 = layer1..layer4; trainable_layers counts from layer4 down
    return FeatureBackbone(arch, out_indices=(2, 3, 4), norm=norm, frozen_stages=4 - trainable_layers,
                           pretrained=pretrained)


def _set_frozen_bn_eps(model: nn.Module, eps: Optional[float]) -> None:
    if eps is not None:
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.eps = eps


@MODELS.register()
def retinanet_resnet50_fpn(num_classes: int = 91, arch: str = "resnet50", trainable_layers: int = 3,
                           norm: str = "frozen_bn", pretrained_backbone: Optional[str] = None,
                           frozen_bn_eps: Optional[float] = None, **kwargs) -> RetinaNet:
    """torchvision's retinanet_resnet50_fpn. ``frozen_bn_eps: 0.0`` reproduces torchvision's COCO_V1
    checkpoint exactly (torchvision sets that eps when it loads those weights)."""
    model = RetinaNet(_resnet_fpn_backbone(arch, trainable_layers, norm, pretrained_backbone), num_classes, **kwargs)
    _set_frozen_bn_eps(model, frozen_bn_eps)
    return model


@MODELS.register()
def retinanet_resnet50_fpn_v2(num_classes: int = 91, arch: str = "resnet50", trainable_layers: int = 3,
                              norm: str = "frozen_bn", pretrained_backbone: Optional[str] = None,
                              **kwargs) -> RetinaNet:
    """torchvision's v2: P6 from C5, GroupNorm in the head towers, GIoU box loss."""
    kwargs.setdefault("neck", {"out_channels": 256, "extra": "p6p7_c5"})
    kwargs.setdefault("head", {"group_norm": True})
    kwargs.setdefault("box_loss", "giou")
    return RetinaNet(_resnet_fpn_backbone(arch, trainable_layers, norm, pretrained_backbone), num_classes, **kwargs)


@MODELS.register()
def fcos_resnet50_fpn(num_classes: int = 91, arch: str = "resnet50", trainable_layers: int = 3,
                      norm: str = "frozen_bn", pretrained_backbone: Optional[str] = None, **kwargs) -> FCOS:
    """torchvision's fcos_resnet50_fpn."""
    return FCOS(_resnet_fpn_backbone(arch, trainable_layers, norm, pretrained_backbone), num_classes, **kwargs)
