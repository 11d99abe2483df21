"""Letterbox input handling (YOLO): scale each image to fit a square canvas keeping its aspect
ratio, centre it on a grey canvas, normalise, and map predictions back to the image.

The sibling of ``DetInputTransform`` (keep-ratio resize + pad to the bottom-right), with the same
interface: ``forward(images, targets) -> (batch, placements, targets)`` and
``postprocess(results, placements, original_sizes)``. A placement is (canvas height, canvas
width, top, left, scale). In training, ``train_sizes`` picks one canvas size per batch at random
(YOLOv3's multi-scale training); evaluation uses ``size``.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import ConfigError


class Placement(NamedTuple):
    height: int   # canvas (the padded batch); [0] and [1] are what post-processing clips to
    width: int
    top: int
    left: int
    scale: float


class LetterboxTransform(nn.Module):
    """Args:
        size: canvas side at evaluation (a multiple of ``stride``).
        train_sizes: canvas sides to pick from per training batch (default: ``size`` only).
        image_mean / image_std: normalisation of 0-1 images (Darknet: none, i.e. 0 / 1).
        pad_value: canvas colour in 0-1 units, before normalisation (Darknet: 0.5 grey).
        stride: every size must be a multiple of the network's largest stride.
    """

    def __init__(self, size: int = 416, train_sizes: Optional[Sequence[int]] = None,
                 image_mean: Sequence[float] = (0.0, 0.0, 0.0), image_std: Sequence[float] = (1.0, 1.0, 1.0),
                 pad_value: float = 0.5, stride: int = 32):
        super().__init__()
        self.size = int(size)
        self.train_sizes = [int(s) for s in (train_sizes or [size])]
        for s in [self.size] + self.train_sizes:
            if s <= 0 or s % stride:
                raise ConfigError(f"LetterboxTransform: size {s} must be a positive multiple of the stride {stride}")
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.pad_value = pad_value

    def _canvas_size(self) -> int:
        if self.training and len(self.train_sizes) > 1:
            return self.train_sizes[int(torch.empty(1).uniform_(0.0, float(len(self.train_sizes))).item())]
        return self.size if not self.training else self.train_sizes[0]

    def _traced(self, img: Tensor):
        """Inference under tracing (export): the fit, the offsets and the padding are graph values
        computed from the input's shape with the eager arithmetic (float64 scale, round half to
        even, centred), so the exported model letterboxes any image size onto the fixed canvas."""
        side = self.size
        mean = torch.as_tensor(self.image_mean, dtype=img.dtype, device=img.device)[:, None, None]
        std = torch.as_tensor(self.image_std, dtype=img.dtype, device=img.device)[:, None, None]
        hw = torch._shape_as_tensor(img)[-2:].to(torch.float64)
        scale = torch.min(torch.tensor(float(side), dtype=torch.float64) / hw)  # float64 Div, not a float32 reciprocal
        new = torch.round(hw * scale).clamp(1, side).to(torch.int64)
        top, left = torch.div(side - new[0], 2, rounding_mode="floor"), torch.div(side - new[1], 2, rounding_mode="floor")
        resized = F.interpolate(img[None], size=(new[0], new[1]), mode="bilinear", align_corners=False)[0]
        # pad in 0-1 units with the canvas colour, then normalise: the same pixels as eager's canvas
        canvas = F.pad(resized, (left, side - new[1] - left, top, side - new[0] - top), value=self.pad_value)
        return ((canvas - mean) / std)[None], [Placement(side, side, top, left, scale)], None

    def forward(self, images: List[Tensor], targets: Optional[List[Dict[str, Tensor]]] = None):
        if torch.jit.is_tracing() and targets is None and len(images) == 1:
            return self._traced(images[0])
        side = self._canvas_size()
        targets = [dict(t) for t in targets] if targets is not None else None
        first = images[0]
        mean = torch.as_tensor(self.image_mean, dtype=first.dtype, device=first.device)[:, None, None]
        std = torch.as_tensor(self.image_std, dtype=first.dtype, device=first.device)[:, None, None]
        batch = first.new_empty((len(images), first.shape[0], side, side))
        batch.copy_(((torch.full_like(mean, self.pad_value) - mean) / std).expand(len(images), -1, side, side))
        placements = []
        for i, img in enumerate(images):
            if img.dim() != 3:
                raise ValueError(f"images must be a list of (C, H, W) tensors, got shape {tuple(img.shape)}")
            h, w = img.shape[-2:]
            scale = min(side / h, side / w)
            nh, nw = max(1, min(side, round(h * scale))), max(1, min(side, round(w * scale)))
            top, left = (side - nh) // 2, (side - nw) // 2
            resized = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
            batch[i, :, top:top + nh, left:left + nw] = (resized - mean) / std
            placements.append(Placement(side, side, top, left, scale))
            if targets is not None:
                b = targets[i]["boxes"]
                # map by the actual resized extent, so a box on the image border stays on the border
                sx, sy = nw / w, nh / h
                targets[i]["boxes"] = torch.stack((b[:, 0] * sx + left, b[:, 1] * sy + top,
                                                   b[:, 2] * sx + left, b[:, 3] * sy + top), dim=1)
                targets[i].pop("masks", None)
        return batch, placements, targets

    def postprocess(self, results: List[Dict[str, Tensor]], placements: List[Placement],
                    original: List[Tuple[int, int]]) -> List[Dict[str, Tensor]]:
        for r, p, (h, w) in zip(results, placements, original):
            if isinstance(p.scale, Tensor):  # traced (export): keep the arithmetic in the graph
                nh = torch.round(h * p.scale).clamp(1, p.height)
                nw = torch.round(w * p.scale).clamp(1, p.width)
            else:
                nh, nw = max(1, min(p.height, round(h * p.scale))), max(1, min(p.width, round(w * p.scale)))
            b = r["boxes"]
            x = ((b[:, 0::2] - p.left) * (w / nw)).clamp(min=0, max=w)
            y = ((b[:, 1::2] - p.top) * (h / nh)).clamp(min=0, max=h)
            r["boxes"] = torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)
        return results
