"""Pieces shared by the heatmap pose models (CPM, OpenPose): input normalisation and padding to the
output stride, plain conv stacks, the masked L2 loss, keypoint metadata arguments, and the
flip-test bookkeeping."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON, KeypointMeta  # metadata only (no data loading)
from ...registry import ConfigError
from .targets import limb_flip_index

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_stack(in_channels: int, channels: Sequence[int], kernels: Sequence[int], norm: bool = False,
               last_relu: bool = True) -> nn.Sequential:
    """conv (same padding) [+ BN] + ReLU per entry; the last ReLU optional (an output layer)."""
    layers: List[nn.Module] = []
    for i, (c, k) in enumerate(zip(channels, kernels)):
        last = i == len(channels) - 1
        layers.append(nn.Conv2d(in_channels, c, k, padding=k // 2, bias=not norm or (last and not last_relu)))
        if norm and not (last and not last_relu):
            layers.append(nn.BatchNorm2d(c))
        if not last or last_relu:
            layers.append(nn.ReLU(inplace=True))
        in_channels = c
    return nn.Sequential(*layers)


def init_convs(module: nn.Module) -> None:
    """He init for the hidden convs of the stages (deep stacks of 7x7/11x11 convs without
    normalisation barely train from the papers' N(0, 0.01) in a short run), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_output(conv: nn.Conv2d, background: bool = False) -> None:
    """Output 1x1 convs start near zero; a background channel (last) starts at 1, its usual target."""
    nn.init.normal_(conv.weight, std=0.001)
    nn.init.zeros_(conv.bias)
    if background:
        with torch.no_grad():
            conv.bias[-1] = 1.0


def masked_mse(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """Half the summed squared error per image (Caffe's EuclideanLoss, as the papers trained), with
    ``weight`` (B, 1, h, w) zero where people are unlabelled or crowds (they must not teach background)."""
    err = (pred.float() - target) ** 2
    if weight is not None:
        err = err * weight
    return err.sum() / (2 * pred.shape[0])


def pad_to_stride(images: Tensor, stride: int) -> Tensor:
    """Zero-pad (bottom/right) so H and W are multiples of ``stride``."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    return F.pad(images, (0, pw, 0, ph)) if ph or pw else images


class PoseModelBase(nn.Module):
    """Normalises the inputs, keeps the keypoint metadata the model needs (number of keypoints,
    skeleton, left/right pairs for flip testing)."""

    def __init__(self, num_keypoints: int, skeleton: Optional[Sequence[Sequence[int]]], flip_pairs, flip_test: bool,
                 image_mean: Sequence[float], image_std: Sequence[float], need_skeleton: bool):
        super().__init__()
        coco = num_keypoints == len(COCO_KEYPOINT_NAMES)
        if skeleton is None and need_skeleton:
            if not coco:
                raise ConfigError(f"{type(self).__name__}: num_keypoints={num_keypoints} needs model.skeleton "
                                  f"(0-based limbs, the dataset's skeleton); only COCO's 17 have a default")
            skeleton = COCO_SKELETON
        if flip_pairs is None:
            flip_pairs = KeypointMeta.create(COCO_KEYPOINT_NAMES).flip_pairs if coco else []
        names = [f"k{i}" for i in range(num_keypoints)]
        meta = KeypointMeta.create(names, skeleton or [], flip_pairs, [], where=f"model ({type(self).__name__})")
        self.num_keypoints = num_keypoints
        self.needs_skeleton = need_skeleton  # its outputs follow the limbs (PAFs): they must be the data's
        self.skeleton: List[Tuple[int, int]] = [tuple(l) for l in meta.skeleton]
        self.flip_pairs: List[Tuple[int, int]] = [tuple(p) for p in meta.flip_pairs]
        self.flip_index = meta.flip_index()
        self.flip_test = flip_test
        if flip_test and not self.flip_pairs:
            raise ConfigError(f"{type(self).__name__}: flip_test needs model.flip_pairs (0-based left/right pairs)")
        self.limb_flip = limb_flip_index(self.skeleton, self.flip_index) if flip_test and self.skeleton else None
        self.register_buffer("image_mean", torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        return (images - self.image_mean) / self.image_std
