"""Transforms for clips. Spatial ones need nothing new: a video dataset hands its clip to the
transforms as a ``tv_tensors.Video`` ``[T, C, H, W]``, and every torchvision v2 transform (Resize,
RandomCrop, CenterCrop, RandomHorizontalFlip, Normalize ...) draws its random parameters once per
call and applies them to every frame alike. What is specific to time lives here.
"""
from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..registry import TRANSFORMS


@TRANSFORMS.register()
class ShuffleFrames(v2.Transform):
    """Put a clip's frames in a random order: the same frames without their motion. A diagnostic,
    not an augmentation: a model that really uses motion drops towards chance on shuffled clips
    (configs/video/shapes/*_shuffled.yaml)."""

    def make_params(self, flat_inputs: list) -> dict:
        videos = [x for x in flat_inputs if isinstance(x, tv_tensors.Video)]
        return {"order": torch.randperm(videos[0].shape[-4]) if videos else None}

    def transform(self, inpt: Any, params: dict) -> Any:
        if isinstance(inpt, tv_tensors.Video) and params["order"] is not None:
            return tv_tensors.wrap(inpt[..., params["order"], :, :, :], like=inpt)
        return inpt
