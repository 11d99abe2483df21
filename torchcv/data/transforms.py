"""Transforms named in YAML.

Every class of ``torchvision.transforms.v2`` is registered under its own name, so configs can use
``RandomResizedCrop``, ``ColorJitter``, ``RandAugment``, ``Normalize`` ... with torchvision's
arguments. v2 transforms move ``tv_tensors`` (bounding boxes, masks, keypoints) together with the
image, which is what detection and segmentation need. A dataset composes its list with
``Compose`` and calls it as ``image, target = transforms(image, target)``.
"""
from __future__ import annotations

import inspect
from typing import Any, List, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..registry import TRANSFORMS, ConfigError

for _name, _obj in inspect.getmembers(v2, inspect.isclass):
    if issubclass(_obj, v2.Transform) and _name not in TRANSFORMS and not _name.startswith("_"):
        TRANSFORMS.register(_name, obj=_obj)


@TRANSFORMS.register()
class ToFloat(v2.Transform):
    """uint8 image -> float in [0, 1] (masks and boxes untouched)."""

    def transform(self, inpt: Any, params: dict) -> Any:
        if isinstance(inpt, (tv_tensors.BoundingBoxes, tv_tensors.Mask, tv_tensors.KeyPoints)):
            return inpt
        if isinstance(inpt, torch.Tensor) and inpt.dtype == torch.uint8 and inpt.ndim >= 3:
            return v2.functional.to_dtype(inpt, torch.float32, scale=True)
        return inpt


def compose(transforms: Sequence[Any] | None, key: str = "transforms") -> v2.Compose:
    """Compose already-built transforms (the registry builds the list items from their configs)."""
    items: List[Any] = list(transforms or [])
    for i, t in enumerate(items):
        if not callable(t):
            raise ConfigError(f"{key}.{i}: {t!r} is not a transform; each item needs a 'type' naming a "
                              f"registered transform (see: python tools/list_models.py transforms)")
    return v2.Compose(items) if items else v2.Identity()
