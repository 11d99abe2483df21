"""Mask branch of the RoI heads: conv tower, upsampling predictor, loss, and pasting masks into images."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ...registry import HEADS
from ..losses.det_losses import maskrcnn_loss
from .det_utils import split_per_image
from .roi_heads import RoIBranch


class MaskRCNNHeads(nn.Sequential):
    """A stack of 3x3 conv + ReLU layers (weights under ``i.0`` like torchvision's)."""

    def __init__(self, in_channels: int, layers: Sequence[int] = (256, 256, 256, 256), dilation: int = 1):
        blocks = []
        for cout in layers:
            blocks.append(nn.Sequential(nn.Conv2d(in_channels, cout, 3, padding=dilation, dilation=dilation),
                                        nn.ReLU(inplace=True)))
            in_channels = cout
        super().__init__(*blocks)
        self.out_channels = in_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)


class MaskRCNNPredictor(nn.Module):
    """2x transposed-conv upsampling then one mask logit map per class."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int):
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)
        self.relu = nn.ReLU(inplace=True)
        self.mask_fcn_logits = nn.Conv2d(dim_reduced, num_classes, 1)
        for name, p in self.named_parameters():
            if "weight" in name:
                nn.init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.zeros_(p)

    def forward(self, x: Tensor) -> Tensor:
        return self.mask_fcn_logits(self.relu(self.conv5_mask(x)))


def _expand(boxes: Tensor, scale: float) -> Tensor:
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack((cx - w_half, cy - h_half, cx + w_half, cy + h_half), dim=1)


def paste_masks(masks: Tensor, boxes: Tensor, image_size: Tuple[int, int], padding: int = 1) -> Tensor:
    """Resize each (M, M) mask probability map to its box and place it in an image-sized canvas.

    The mask is padded by one pixel first (and the box grown to match) so the bilinear resize
    fades out at the box border instead of stopping abruptly. Returns (N, 1, H, W).
    """
    if torch.jit.is_tracing():
        return paste_masks_traceable(masks, boxes, image_size, padding)
    h_img, w_img = image_size
    if masks.shape[0] == 0:
        return masks.new_empty((0, 1, h_img, w_img))
    m = masks.shape[-1]
    scale = float(m + 2 * padding) / m
    masks = F.pad(masks, (padding,) * 4)
    boxes = _expand(boxes, scale).to(dtype=torch.int64)
    out = masks.new_zeros((masks.shape[0], 1, h_img, w_img))
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        x0b, y0b, x1b, y1b = box.tolist()
        w = max(x1b - x0b + 1, 1)
        h = max(y1b - y0b + 1, 1)
        resized = F.interpolate(mask[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        x0, x1 = max(x0b, 0), min(x1b + 1, w_img)
        y0, y1 = max(y0b, 0), min(y1b + 1, h_img)
        if x1 > x0 and y1 > y0:
            out[i, 0, y0:y1, x0:x1] = resized[y0 - y0b:y1 - y0b, x0 - x0b:x1 - x0b]
    return out


def _resize_weights(start: Tensor, end: Tensor, size: int, src_size: int) -> Tensor:
    """[N, size, src_size] bilinear weights (align_corners=False, as F.interpolate) that resize a
    src_size axis onto the pixels start..end (inclusive) of a size-long canvas; zero elsewhere."""
    pos = torch.arange(size, device=start.device)[None, :]
    length = (end - start + 1).clamp(min=1)[:, None].to(torch.float32)
    j = (pos - start[:, None]).to(torch.float32)
    src = ((j + 0.5) * (float(src_size) / length) - 0.5).clamp(min=0)
    lo = src.floor().clamp(max=src_size - 1)
    frac = src - lo
    hi = (lo + 1).clamp(max=src_size - 1)
    grid = torch.arange(src_size, device=start.device, dtype=torch.float32)[None, None, :]
    w = (grid == lo[..., None]).to(torch.float32) * (1 - frac)[..., None] + \
        (grid == hi[..., None]).to(torch.float32) * frac[..., None]
    inside = ((pos >= start[:, None]) & (pos <= end[:, None])).to(torch.float32)
    return w * inside[..., None]


def paste_masks_traceable(masks: Tensor, boxes: Tensor, image_size: Tuple[int, int], padding: int = 1) -> Tensor:
    """paste_masks without per-box Python values, for tracing (ONNX / TorchScript export): the
    bilinear resize is separable, so each canvas is Wy @ mask @ Wx^T. Same values as paste_masks
    up to float rounding (about 1e-6)."""
    h_img, w_img = image_size  # traced values under tracing: the canvas follows the input size
    m = masks.shape[-1]
    scale = float(m + 2 * padding) / m
    padded = F.pad(masks, (padding,) * 4)[:, 0]                      # [N, M', M']
    box = _expand(boxes, scale).to(dtype=torch.int64)
    wy = _resize_weights(box[:, 1], box[:, 3], h_img, m + 2 * padding)  # [N, H, M']
    wx = _resize_weights(box[:, 0], box[:, 2], w_img, m + 2 * padding)  # [N, W, M']
    return torch.bmm(torch.bmm(wy, padded), wx.transpose(1, 2))[:, None]


@HEADS.register()
class MaskBranch(RoIBranch):
    """Instance masks (Mask R-CNN): RoIAlign ``output_size`` -> ``layers`` 3x3 convs -> 2x upsampling
    -> one ``M x M`` logit map per class; per-pixel BCE on the ground-truth class; in inference the
    probability map of the predicted class, ``masks`` (N, 1, M, M), pasted into the image by the
    detector's post-processing."""

    name = "mask"
    target_keys = ("masks",)

    def __init__(self, layers: Sequence[int] = (256, 256, 256, 256), dilation: int = 1, dim_reduced: int = 256,
                 output_size: int = 14, sampling_ratio: int = 2):
        self.layers, self.dilation, self.dim_reduced = list(layers), dilation, dim_reduced
        self.output_size, self.sampling_ratio = output_size, sampling_ratio

    def build(self, in_channels: int, num_classes: int, featmap_names: Sequence[str]) -> Dict[str, nn.Module]:
        head = MaskRCNNHeads(in_channels, self.layers, self.dilation)
        return {"roi_pool": ops.MultiScaleRoIAlign(list(featmap_names), self.output_size, self.sampling_ratio),
                "head": head, "predictor": MaskRCNNPredictor(head.out_channels, self.dim_reduced, num_classes)}

    def _logits(self, features, boxes, image_sizes) -> Tensor:
        return self.predictor(self.head(self.roi_pool(features, boxes, image_sizes)))

    def loss(self, features, proposals, image_sizes, targets, matched) -> Dict[str, Tensor]:
        logits = self._logits(features, proposals, image_sizes)
        return {"loss_mask": maskrcnn_loss(logits, proposals, [t["masks"] for t in targets],
                                           [t["labels"] for t in targets], matched)}

    def predict(self, features, results: List[Dict[str, Tensor]], image_sizes) -> None:
        probs = self._logits(features, [r["boxes"] for r in results], image_sizes).sigmoid()
        counts = [r["labels"].shape[0] for r in results]
        labels = torch.cat([r["labels"] for r in results])
        probs = probs[torch.arange(probs.shape[0], device=labels.device), labels][:, None]
        for r, m in zip(results, split_per_image(probs, counts)):
            r["masks"] = m
