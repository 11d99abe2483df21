"""Segmentation transforms that move the image and its mask together.

They are ``torchvision.transforms.v2`` transforms: ``tv_tensors.Image`` is resampled bilinearly,
``tv_tensors.Mask`` with nearest neighbour, and padding fills images with ``image_fill`` and masks
with ``mask_fill`` (255 = ignore). torchvision's own ``RandomHorizontalFlip``, ``ColorJitter``,
``Normalize`` ... (registered by name) also work on (Image, Mask) pairs.
"""
from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..registry import TRANSFORMS, ConfigError


def _size_of(flat_inputs: List[Any]):
    for x in flat_inputs:
        if isinstance(x, (tv_tensors.Image, tv_tensors.Mask)) or (isinstance(x, torch.Tensor) and x.ndim >= 2):
            return x.shape[-2:]
    raise ValueError("no image or mask among the transform's inputs")


def _pair(size) -> tuple:
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


@TRANSFORMS.register()
class RandomScale(v2.Transform):
    """Resize by a random factor in ``scale_range`` of ``base_size`` (an int: the longer side; a pair
    (h, w): that size) or, when ``base_size`` is None, of the input size."""

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0), base_size=None):
        super().__init__()
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ConfigError(f"RandomScale.scale_range={scale_range}: need [min, max] with 0 < min <= max")
        self.scale_range = tuple(float(s) for s in scale_range)
        self.base_size = base_size

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        s = random.uniform(*self.scale_range)
        if self.base_size is None:
            bh, bw = h, w
        elif isinstance(self.base_size, (int, float)):
            r = self.base_size / max(h, w)
            bh, bw = h * r, w * r
        else:
            bh, bw = self.base_size
        return {"size": [max(1, int(round(bh * s))), max(1, int(round(bw * s)))]}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return TF.resize(inpt, params["size"], interpolation=v2.InterpolationMode.NEAREST)
        return TF.resize(inpt, params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


@TRANSFORMS.register()
class RandomCropPad(v2.Transform):
    """Pad up to ``size`` (bottom/right; image with ``image_fill``, mask with ``mask_fill``), then take
    a random ``size`` crop. ``cat_max_ratio`` < 1 retries (up to 10 times) crops where one class
    covers more than that share of the labelled pixels, as PSPNet/mmseg training does."""

    def __init__(self, size, image_fill: float = 0.0, mask_fill: int = 255, cat_max_ratio: float = 1.0,
                 ignore_index: int = 255):
        super().__init__()
        self.size = _pair(size)
        self.image_fill, self.mask_fill = image_fill, mask_fill
        self.cat_max_ratio, self.ignore_index = cat_max_ratio, ignore_index

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        ch, cw = self.size
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        H, W = h + ph, w + pw
        mask = next((x for x in flat_inputs if isinstance(x, tv_tensors.Mask)), None)
        for _ in range(10 if self.cat_max_ratio < 1.0 and mask is not None else 1):
            top, left = random.randint(0, H - ch), random.randint(0, W - cw)
            if self.cat_max_ratio >= 1.0 or mask is None:
                break
            crop = mask[..., top:top + ch, left:left + cw]
            crop = crop[crop != self.ignore_index]
            if crop.numel() and torch.bincount(crop.flatten().long()).max() / crop.numel() < self.cat_max_ratio:
                break
        return {"pad": [0, 0, pw, ph], "top": top, "left": left}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        if any(params["pad"]):
            fill = self.mask_fill if isinstance(inpt, tv_tensors.Mask) else self.image_fill
            inpt = TF.pad(inpt, params["pad"], fill=fill)
        return TF.crop(inpt, params["top"], params["left"], *self.size)


@TRANSFORMS.register()
class ResizeLong(v2.Transform):
    """Resize so the longer side is ``size`` (keeps aspect; masks nearest). For evaluation of
    datasets with mixed image sizes."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        r = self.size / max(h, w)
        return {"size": [max(1, int(math.floor(h * r + 0.5))), max(1, int(math.floor(w * r + 0.5)))]}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        mode = v2.InterpolationMode.NEAREST if isinstance(inpt, tv_tensors.Mask) else v2.InterpolationMode.BILINEAR
        return TF.resize(inpt, params["size"], interpolation=mode, antialias=not isinstance(inpt, tv_tensors.Mask))
