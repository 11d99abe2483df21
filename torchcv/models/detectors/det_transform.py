"""Model-side input handling of detectors: normalise, keep-ratio resize (or resize to a fixed size,
as SSD does), pad into a batch, and map predictions back to the original image size (what
torchvision's GeneralizedRCNNTransform does, with the same arithmetic, so outputs match
torchvision's models)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..heads.mask_head import paste_masks


def resize_boxes(boxes: Tensor, old: Sequence[int], new: Sequence[int]) -> Tensor:
    rh = torch.tensor(new[0], dtype=torch.float32, device=boxes.device) / torch.tensor(
        old[0], dtype=torch.float32, device=boxes.device)
    rw = torch.tensor(new[1], dtype=torch.float32, device=boxes.device) / torch.tensor(
        old[1], dtype=torch.float32, device=boxes.device)
    x0, y0, x1, y1 = boxes.unbind(1)
    return torch.stack((x0 * rw, y0 * rh, x1 * rw, y1 * rh), dim=1)


def resize_keypoints(keypoints: Tensor, old: Sequence[int], new: Sequence[int]) -> Tensor:
    rh = torch.tensor(new[0], dtype=torch.float32, device=keypoints.device) / torch.tensor(
        old[0], dtype=torch.float32, device=keypoints.device)
    rw = torch.tensor(new[1], dtype=torch.float32, device=keypoints.device) / torch.tensor(
        old[1], dtype=torch.float32, device=keypoints.device)
    out = keypoints.clone()
    out[..., 0] *= rw
    out[..., 1] *= rh
    return out


class DetInputTransform(nn.Module):
    def __init__(self, min_size: Sequence[int] | int, max_size: int, image_mean: Sequence[float],
                 image_std: Sequence[float], size_divisible: int = 32,
                 fixed_size: Optional[Sequence[int]] = None):
        """``fixed_size`` (height, width): every image is resized to it, ignoring its aspect ratio
        (``min_size`` / ``max_size`` are then unused)."""
        super().__init__()
        self.min_size = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
        self.max_size = max_size
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.size_divisible = size_divisible
        self.fixed_size = [int(s) for s in fixed_size] if fixed_size is not None else None

    def _resize(self, image: Tensor, target: Optional[Dict[str, Tensor]]):
        h, w = image.shape[-2:]
        if self.fixed_size is not None:
            image = F.interpolate(image[None], size=self.fixed_size, mode="bilinear", align_corners=False)[0]
            if target is not None:
                target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
                if "keypoints" in target:
                    target["keypoints"] = resize_keypoints(target["keypoints"], (h, w), image.shape[-2:])
                if "masks" in target:
                    target["masks"] = F.interpolate(target["masks"][:, None].float(), size=self.fixed_size)[:, 0].byte()
            return image, target
        if self.training:  # multi-scale training: one of min_size at random
            size = self.min_size[int(torch.empty(1).uniform_(0.0, float(len(self.min_size))).item())]
        else:
            size = self.min_size[-1]
        scale = min(size / min(h, w), self.max_size / max(h, w))
        image = F.interpolate(image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                              align_corners=False)[0]
        if target is not None:
            target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
            if "keypoints" in target:
                target["keypoints"] = resize_keypoints(target["keypoints"], (h, w), image.shape[-2:])
            if "masks" in target:
                m = target["masks"]
                target["masks"] = F.interpolate(m[:, None].float(), scale_factor=scale,
                                                recompute_scale_factor=True)[:, 0].byte()
        return image, target

    def _traced(self, images: List[Tensor]):
        """Inference under tracing (export): the resize scale, the output size and the padding are
        computed as graph values from the input's shape, with the same arithmetic as eager (float64
        scale, floor of size x scale, pad to a multiple of size_divisible), so the exported model
        follows its input size."""
        out, sizes = [], []
        stride = float(self.size_divisible)
        for img in images:
            mean = torch.as_tensor(self.image_mean, dtype=img.dtype, device=img.device)
            std = torch.as_tensor(self.image_std, dtype=img.dtype, device=img.device)
            img = (img - mean[:, None, None]) / std[:, None, None]
            hw = torch._shape_as_tensor(img)[-2:].to(torch.float64)
            # tensor / tensor in float64: a Python number divided by a tensor is exported as a float32
            # reciprocal, and floor(200 * (288 / 200)) would then give 287 where eager gives 288
            limits = torch.tensor([float(self.min_size[-1]), float(self.max_size)], dtype=torch.float64)
            scale = torch.min(limits / torch.stack((hw.min(), hw.max())))
            new = torch.floor(hw * scale).to(torch.int64)
            img = F.interpolate(img[None], size=(new[0], new[1]), mode="bilinear", align_corners=False)[0]
            padded = (torch.ceil(new.to(torch.float64) / stride) * stride).to(torch.int64)
            sizes.append((new[0], new[1]))
            out.append(F.pad(img, (0, padded[1] - new[1], 0, padded[0] - new[0])))
        return torch.stack(out), sizes, None

    def forward(self, images: List[Tensor], targets: Optional[List[Dict[str, Tensor]]] = None):
        # a fixed-size resize is already shape-independent: only the keep-ratio resize needs graph arithmetic
        if torch.jit.is_tracing() and targets is None and len(images) == 1 and self.fixed_size is None:
            return self._traced(images)
        targets = [dict(t) for t in targets] if targets is not None else None
        out = []
        for i, img in enumerate(images):
            if img.dim() != 3:
                raise ValueError(f"images must be a list of (C, H, W) tensors, got shape {tuple(img.shape)}")
            mean = torch.as_tensor(self.image_mean, dtype=img.dtype, device=img.device)
            std = torch.as_tensor(self.image_std, dtype=img.dtype, device=img.device)
            img = (img - mean[:, None, None]) / std[:, None, None]
            img, t = self._resize(img, targets[i] if targets is not None else None)
            if targets is not None:
                targets[i] = t
            out.append(img)
        sizes = [tuple(int(s) for s in img.shape[-2:]) for img in out]
        stride = float(self.size_divisible)
        c = max(img.shape[0] for img in out)
        bh = int(math.ceil(float(max(s[0] for s in sizes)) / stride) * stride)
        bw = int(math.ceil(float(max(s[1] for s in sizes)) / stride) * stride)
        batch = out[0].new_full((len(out), c, bh, bw), 0)
        for i, img in enumerate(out):
            batch[i, : img.shape[0], : img.shape[1], : img.shape[2]].copy_(img)
        return batch, sizes, targets

    def postprocess(self, results: List[Dict[str, Tensor]], sizes: List[Tuple[int, int]],
                    original: List[Tuple[int, int]]) -> List[Dict[str, Tensor]]:
        for r, s, o in zip(results, sizes, original):
            r["boxes"] = resize_boxes(r["boxes"], s, o)
            if "keypoints" in r:
                r["keypoints"] = resize_keypoints(r["keypoints"], s, o)
            if "masks" in r:
                r["masks"] = paste_masks(r["masks"], r["boxes"], o)
        return results
