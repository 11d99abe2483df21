"""Faster R-CNN, Mask R-CNN (and any RoI branch combination) assembled from registered parts.

State-dict layout equals torchvision's (``backbone.body.*``, ``backbone.fpn.*``, ``rpn.head.*``,
``roi_heads.box_head.*``, ``roi_heads.mask_head.*`` ...), so torchvision's ``fasterrcnn_resnet50_fpn`` /
``maskrcnn_resnet50_fpn`` checkpoints load directly (``load_from: path``); a predictor of another
number of classes is skipped and reported by ``load_weights`` -- the fine-tuning flow of the
PennFudan tutorial.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from ... import ops
from ...registry import MODELS, ConfigError
from ..backbones.features import FeatureBackbone, FrozenBatchNorm2d
from ..heads.box_head import FastRCNNPredictor, TwoMLPHead
from ..heads.det_utils import AnchorGenerator, check_options, check_targets
from ..heads.keypoint_head import KeypointBranch
from ..heads.mask_head import MaskBranch
from ..heads.roi_heads import RoIBranch, RoIHeads
from ..heads.rpn import RegionProposalNetwork, RPNHead
from ..necks.fpn import BackboneWithFPN
from .det_transform import DetInputTransform

RPN_DEFAULTS = dict(pre_nms_top_n_train=2000, pre_nms_top_n_test=1000, post_nms_top_n_train=2000,
                    post_nms_top_n_test=1000, nms_thresh=0.7, fg_iou_thresh=0.7, bg_iou_thresh=0.3,
                    batch_size_per_image=256, positive_fraction=0.5, score_thresh=0.0)
ROI_DEFAULTS = dict(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100, fg_iou_thresh=0.5,
                    bg_iou_thresh=0.5, batch_size_per_image=512, positive_fraction=0.25, bbox_reg_weights=None)
BOX_HEAD_DEFAULTS = dict(representation_size=1024, output_size=7, sampling_ratio=2)
MASK_HEAD_DEFAULTS = dict(layers=(256, 256, 256, 256), dilation=1, dim_reduced=256, output_size=14,
                          sampling_ratio=2)
KEYPOINT_HEAD_DEFAULTS = dict(layers=(512,) * 8, output_size=14, sampling_ratio=2)


@MODELS.register()
class FasterRCNN(nn.Module):
    """Args (sections are plain dicts of options; defaults are torchvision's):
        backbone: a built FeatureBackbone (``type: FeatureBackbone``).
        num_classes: including the background class 0.
        neck: a built FPN, or a dict of FPN options (``out_channels``, ``extra``) with the input
            channels taken from the backbone.
        return_layers: backbone children that feed the FPN (default: the backbone's taps).
        min_size / max_size: keep-ratio resize inside the model (a list of min sizes picks one at
            random per image in training). image_mean / image_std: normalisation of 0-1 images.
        anchor_sizes: one group per FPN output; aspect_ratios: one group, or one per level.
        rpn, roi_heads, box_head: option dicts (see RPN_DEFAULTS ... at the top).
        roi_branches: instance branches run on the detections, e.g. ``[{type: MaskBranch, ...},
            {type: KeypointBranch, num_keypoints: 17}]``.
        mask_head: (``MaskRCNN``) options of its mask branch (MASK_HEAD_DEFAULTS).
        num_keypoints, keypoint_head: (``KeypointRCNN``) K and the options of its keypoint branch
            (KEYPOINT_HEAD_DEFAULTS).
    """

    default_branches: Sequence[str] = ()

    def __init__(self, backbone: nn.Module, num_classes: int, neck=None, return_layers: Optional[list] = None,
                 min_size=800, max_size: int = 1333, image_mean=(0.485, 0.456, 0.406),
                 image_std=(0.229, 0.224, 0.225), size_divisible: int = 32,
                 anchor_sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=(0.5, 1.0, 2.0),
                 rpn: Optional[dict] = None, roi_heads: Optional[dict] = None, box_head: Optional[dict] = None,
                 mask_head: Optional[dict] = None, roi_branches: Optional[List[RoIBranch]] = None,
                 num_keypoints: Optional[int] = None, keypoint_head: Optional[dict] = None,
                 featmap_names: Optional[List[str]] = None, rpn_conv_depth: int = 1):
        super().__init__()
        name = type(self).__name__
        if num_classes < 2:
            raise ConfigError(f"{name}.num_classes={num_classes}: count the background too (classes + 1)")
        if isinstance(neck, nn.Module):
            self.backbone = BackboneWithFPN(backbone, fpn=neck, return_layers=return_layers)
        else:
            self.backbone = BackboneWithFPN(backbone, fpn_cfg=check_options(neck, dict(out_channels=256,
                                            extra="maxpool"), f"{name}.neck"), return_layers=return_layers)
        ch = self.backbone.out_channels
        n_levels = self.backbone.num_levels
        anchor_sizes = [tuple(a) if isinstance(a, (list, tuple)) else (a,) for a in anchor_sizes]
        if len(anchor_sizes) == 1 and n_levels > 1:
            anchor_sizes = anchor_sizes * n_levels
        anchors = AnchorGenerator(anchor_sizes, aspect_ratios)
        if len(anchor_sizes) != n_levels:
            raise ConfigError(f"{name}.anchor_sizes has {len(anchor_sizes)} groups but the FPN gives {n_levels} levels")
        self.transform = DetInputTransform(min_size, max_size, image_mean, image_std, size_divisible)
        r = check_options(rpn, RPN_DEFAULTS, f"{name}.rpn")
        self.rpn = RegionProposalNetwork(anchors, RPNHead(ch, anchors.num_anchors_per_location()[0], rpn_conv_depth),
                                         **r)
        featmap_names = featmap_names or [str(i) for i in range(len(self.backbone.return_layers))]
        b = check_options(box_head, BOX_HEAD_DEFAULTS, f"{name}.box_head")
        box_pool = ops.MultiScaleRoIAlign(featmap_names, b["output_size"], b["sampling_ratio"])
        head = TwoMLPHead(ch * b["output_size"] ** 2, b["representation_size"])
        predictor = FastRCNNPredictor(b["representation_size"], num_classes)
        branches = self._default_branches(mask_head, num_keypoints, keypoint_head) + list(roi_branches or [])
        for i, br in enumerate(branches):
            if not isinstance(br, RoIBranch):
                raise ConfigError(f"{name}.roi_branches.{i}: {type(br).__name__} is not an RoI branch "
                                  f"(MaskBranch, KeypointBranch, ...)")
        built = [(br, br.build(ch, num_classes, featmap_names)) for br in branches]
        self.roi_heads = RoIHeads(box_pool, head, predictor, branches=built,
                                  **check_options(roi_heads, ROI_DEFAULTS, f"{name}.roi_heads"))
        self.num_classes = num_classes

    def _default_branches(self, mask_head: Optional[dict], num_keypoints: Optional[int],
                          keypoint_head: Optional[dict]) -> List[RoIBranch]:
        if mask_head:
            raise ConfigError(f"{type(self).__name__}: mask_head options given to a model without masks (use "
                              f"MaskRCNN, or roi_branches: [{{type: MaskBranch, ...}}])")
        if num_keypoints is not None or keypoint_head:
            raise ConfigError(f"{type(self).__name__}: keypoint options given to a model without keypoints (use "
                              f"KeypointRCNN, or roi_branches: [{{type: KeypointBranch, ...}}])")
        return []

    @property
    def num_keypoints(self) -> Optional[int]:
        kp = [b for b in self.roi_heads.branches if b.name == "keypoint"]
        return kp[0].num_keypoints if kp else None

    def forward(self, images: List[Tensor], targets: Optional[List[Dict[str, Tensor]]] = None):
        if self.training:
            check_targets(type(self).__name__, targets)
        # traced sizes stay graph values, so an exported model follows its input size
        original = [tuple(img.shape[-2:]) if torch.jit.is_tracing() else tuple(int(s) for s in img.shape[-2:])
                    for img in images]
        batch, sizes, targets = self.transform(images, targets)
        features = self.backbone(batch)
        proposals, rpn_losses = self.rpn(tuple(batch.shape[-2:]), sizes, features, targets)
        results, roi_losses = self.roi_heads(features, proposals, sizes, targets)
        if self.training:
            return {**roi_losses, **rpn_losses}
        return self.transform.postprocess(results, sizes, original)


@MODELS.register()
class MaskRCNN(FasterRCNN):
    """Faster R-CNN with a mask branch (``mask_head`` holds its options)."""

    def _default_branches(self, mask_head, num_keypoints, keypoint_head) -> List[RoIBranch]:
        m = check_options(mask_head, MASK_HEAD_DEFAULTS, f"{type(self).__name__}.mask_head")
        return [MaskBranch(**m)] + super()._default_branches(None, num_keypoints, keypoint_head)


@MODELS.register()
class KeypointRCNN(FasterRCNN):
    """Faster R-CNN with a keypoint branch (``num_keypoints``, ``keypoint_head`` options)."""

    def _default_branches(self, mask_head, num_keypoints, keypoint_head) -> List[RoIBranch]:
        k = check_options(keypoint_head, KEYPOINT_HEAD_DEFAULTS, f"{type(self).__name__}.keypoint_head")
        return super()._default_branches(mask_head, None, None) + [KeypointBranch(num_keypoints or 17, **k)]


# ---- named variants with torchvision's settings --------------------------------------------------
def _resnet_backbone(arch: str, trainable_layers: int, norm: str):
    # levels: 0 = conv1 (stride 2), 1..4 = layer1..layer4; trainable_layers counts from layer4 down
    return FeatureBackbone(arch, out_indices=(1, 2, 3, 4), norm=norm, frozen_stages=4 - trainable_layers)


@MODELS.register()
def fasterrcnn_resnet50_fpn(num_classes: int = 91, arch: str = "resnet50", trainable_layers: int = 5,
                            norm: str = "frozen_bn", **kwargs) -> FasterRCNN:
    return FasterRCNN(_resnet_backbone(arch, trainable_layers, norm), num_classes, **kwargs)


@MODELS.register()
def maskrcnn_resnet50_fpn(num_classes: int = 91, arch: str = "resnet50", trainable_layers: int = 5,
                          norm: str = "frozen_bn", **kwargs) -> MaskRCNN:
    return MaskRCNN(_resnet_backbone(arch, trainable_layers, norm), num_classes, **kwargs)


@MODELS.register()
def keypointrcnn_resnet50_fpn(num_classes: int = 2, num_keypoints: int = 17, arch: str = "resnet50",
                              trainable_layers: int = 5, norm: str = "frozen_bn", **kwargs) -> KeypointRCNN:
    kwargs.setdefault("min_size", (640, 672, 704, 736, 768, 800))
    return KeypointRCNN(_resnet_backbone(arch, trainable_layers, norm), num_classes, num_keypoints=num_keypoints,
                        **kwargs)


def _mobilenet(num_classes: int, norm: str, trainable_layers: int, **kwargs) -> FasterRCNN:
    # torchvision feeds the FPN from features.13 (first stride-32 block, 160 ch) and features.16 (960 ch)
    stage_starts = [0, 2, 4, 7, 13, 16]
    freeze_before = 17 if trainable_layers == 0 else stage_starts[len(stage_starts) - trainable_layers]
    bb = FeatureBackbone("mobilenet_v3_large", out_indices=(3, 4), norm=norm, frozen_stages=-1)
    for m in bb.modules():  # torchvision's detection variant builds its norm layers with the default eps
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            m.eps = 1e-5
    for name, m in bb.body.items():
        if int(name) < freeze_before:
            for p in m.parameters():
                p.requires_grad_(False)
    kwargs.setdefault("anchor_sizes", [(32, 64, 128, 256, 512)] * 3)
    rpn = dict(score_thresh=0.05)
    rpn.update(kwargs.pop("rpn", None) or {})
    return FasterRCNN(bb, num_classes, return_layers=["13", "16"], rpn=rpn, **kwargs)


@MODELS.register()
def fasterrcnn_mobilenet_v3_large_fpn(num_classes: int = 91, norm: str = "frozen_bn", trainable_layers: int = 6,
                                      **kwargs) -> FasterRCNN:
    return _mobilenet(num_classes, norm, trainable_layers, **kwargs)


@MODELS.register()
def fasterrcnn_mobilenet_v3_large_320_fpn(num_classes: int = 91, norm: str = "frozen_bn",
                                          trainable_layers: int = 6, **kwargs) -> FasterRCNN:
    kwargs.setdefault("min_size", 320)
    kwargs.setdefault("max_size", 640)
    rpn = dict(pre_nms_top_n_test=150, post_nms_top_n_test=150)
    rpn.update(kwargs.pop("rpn", None) or {})
    return _mobilenet(num_classes, norm, trainable_layers, rpn=rpn, **kwargs)
