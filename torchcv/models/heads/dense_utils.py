"""Shared pieces of single-stage (dense) detectors: SSD default boxes, FCOS' linear box coder,
SSD's matcher, and the post-processing every dense detector ends with (threshold, top-k
candidates, class-wise NMS, keep the best).

The arithmetic follows torchvision's detection models step for step (same order of operations and
dtypes), so a torchvision ``state_dict`` loaded into our models gives the same detections; the
anchor and default-box generators are tested for exact equality with torchvision's.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ... import ops
from ...registry import ConfigError
from .det_utils import Matcher, clip_boxes


class DefaultBoxGenerator(nn.Module):
    """SSD's default boxes: per level, a box of scale s_k and one of sqrt(s_k * s_k+1) (aspect 1),
    then a pair (w, h) / (h, w) per extra aspect ratio; centres on a grid of ``steps`` (pixels) or
    of the feature map. Scales come from ``scales`` or evenly from ``min_ratio`` .. ``max_ratio``.

    Returns boxes in the padded batch's pixels, xyxy, ordered level, y, x, box (torchvision's order).
    """

    def __init__(self, aspect_ratios: Sequence[Sequence[float]], min_ratio: float = 0.15, max_ratio: float = 0.9,
                 scales: Optional[Sequence[float]] = None, steps: Optional[Sequence[int]] = None, clip: bool = True):
        super().__init__()
        if steps is not None and len(aspect_ratios) != len(steps):
            raise ConfigError(f"DefaultBoxGenerator: {len(aspect_ratios)} aspect ratio groups but {len(steps)} steps; "
                              f"give one step per feature map")
        self.aspect_ratios = [list(a) for a in aspect_ratios]
        self.steps = list(steps) if steps is not None else None
        self.clip = clip
        n = len(self.aspect_ratios)
        if scales is None:
            if n > 1:
                self.scales = [min_ratio + (max_ratio - min_ratio) * k / (n - 1.0) for k in range(n)] + [1.0]
            else:
                self.scales = [min_ratio, max_ratio]
        else:
            self.scales = list(scales)
        if len(self.scales) < n + 1:
            raise ConfigError(f"DefaultBoxGenerator: {n} levels need {n + 1} scales, got {len(self.scales)}")
        self.wh_pairs = [self._wh_pairs(k) for k in range(n)]

    def _wh_pairs(self, k: int) -> Tensor:
        s_k = self.scales[k]
        s_prime = math.sqrt(self.scales[k] * self.scales[k + 1])
        pairs = [[s_k, s_k], [s_prime, s_prime]]
        for ar in self.aspect_ratios[k]:
            r = math.sqrt(ar)
            pairs.extend([[s_k * r, s_k / r], [s_k / r, s_k * r]])
        return torch.as_tensor(pairs, dtype=torch.float32)

    def num_anchors_per_location(self) -> List[int]:
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def _relative_boxes(self, grid_sizes: List[Tuple[int, int]], image_size: Tuple[int, int],
                        dtype: torch.dtype) -> Tensor:
        """(cx, cy, w, h) relative to the image, every level concatenated."""
        out = []
        for k, (gh, gw) in enumerate(grid_sizes):
            if self.steps is not None:
                fx, fy = image_size[1] / self.steps[k], image_size[0] / self.steps[k]
            else:
                fy, fx = gh, gw
            xs = ((torch.arange(0, gw) + 0.5) / fx).to(dtype=dtype)
            ys = ((torch.arange(0, gh) + 0.5) / fy).to(dtype=dtype)
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            wh = self.wh_pairs[k]
            centres = torch.stack((xx.reshape(-1), yy.reshape(-1)) * len(wh), dim=-1).reshape(-1, 2)
            wh = (wh.clamp(min=0, max=1) if self.clip else wh).repeat(gh * gw, 1)
            out.append(torch.cat((centres, wh), dim=1))
        return torch.cat(out, dim=0)

    def forward(self, batch_shape: Tuple[int, int], feature_maps: List[Tensor]) -> Tensor:
        if len(feature_maps) != len(self.aspect_ratios):
            raise ConfigError(f"DefaultBoxGenerator has {len(self.aspect_ratios)} aspect ratio groups but the backbone "
                              f"gives {len(feature_maps)} feature maps: give one group per feature map")
        grid_sizes = [tuple(int(s) for s in f.shape[-2:]) for f in feature_maps]
        rel = self._relative_boxes(grid_sizes, batch_shape, feature_maps[0].dtype).to(feature_maps[0].device)
        xy_size = torch.tensor([batch_shape[1], batch_shape[0]], device=rel.device)
        return torch.cat([(rel[:, :2] - 0.5 * rel[:, 2:]) * xy_size, (rel[:, :2] + 0.5 * rel[:, 2:]) * xy_size], -1)


class BoxLinearCoder:
    """FCOS' box parameterisation: distances from the anchor centre to the four sides (l, t, r, b),
    divided by the anchor's size when ``normalize_by_size``."""

    def __init__(self, normalize_by_size: bool = True):
        self.normalize_by_size = normalize_by_size

    def encode(self, ref: Tensor, boxes: Tensor) -> Tensor:
        cx = 0.5 * (ref[..., 0] + ref[..., 2])
        cy = 0.5 * (ref[..., 1] + ref[..., 3])
        t = torch.stack((cx - boxes[..., 0], cy - boxes[..., 1], boxes[..., 2] - cx, boxes[..., 3] - cy), dim=-1)
        if self.normalize_by_size:
            w = ref[..., 2] - ref[..., 0]
            h = ref[..., 3] - ref[..., 1]
            t = t / torch.stack((w, h, w, h), dim=-1)
        return t

    def decode(self, codes: Tensor, ref: Tensor) -> Tensor:
        ref = ref.to(dtype=codes.dtype)
        cx = 0.5 * (ref[..., 0] + ref[..., 2])
        cy = 0.5 * (ref[..., 1] + ref[..., 3])
        if self.normalize_by_size:
            w = ref[..., 2] - ref[..., 0]
            h = ref[..., 3] - ref[..., 1]
            codes = codes * torch.stack((w, h, w, h), dim=-1)
        return torch.stack((cx - codes[..., 0], cy - codes[..., 1], cx + codes[..., 2], cy + codes[..., 3]), dim=-1)


class SSDMatcher(Matcher):
    """IoU >= threshold is a match, and every ground truth also keeps its best default box."""

    def __init__(self, threshold: float):
        super().__init__(threshold, threshold, allow_low_quality=False)

    def __call__(self, iou: Tensor) -> Tensor:
        matches = super().__call__(iou)
        _, best_pred = iou.max(dim=1)
        matches[best_pred] = torch.arange(best_pred.size(0), dtype=torch.int64, device=best_pred.device)
        return matches


def match_anchors(matcher: Matcher, anchors: Tensor, targets: List[Dict[str, Tensor]]) -> List[Tensor]:
    """Matched ground-truth index per anchor for each image (-1 background, -2 ignored)."""
    out = []
    for t in targets:
        if t["boxes"].numel() == 0:
            out.append(torch.full((anchors.size(0),), -1, dtype=torch.int64, device=anchors.device))
        else:
            out.append(matcher(ops.box_iou(t["boxes"], anchors)))
    return out


def topk_candidates(scores: Tensor, score_thresh: float, k: int) -> Tuple[Tensor, Tensor]:
    """The ``k`` highest of the flattened ``scores`` above ``score_thresh``: (scores, flat indices)."""
    scores = scores.flatten()
    keep = scores > score_thresh
    scores = scores[keep]
    idx = torch.where(keep)[0]
    if torch.jit.is_tracing():  # how many pass the threshold depends on the input: keep it in the graph
        k = torch.min(torch.tensor(k), torch._shape_as_tensor(idx)[0])
    else:
        k = min(k, idx.numel())
    scores, order = scores.topk(k)
    return scores, idx[order]


def finish_detections(boxes: Tensor, scores: Tensor, labels: Tensor, nms_thresh: float,
                      detections_per_img: int) -> Dict[str, Tensor]:
    """Class-wise NMS, then the ``detections_per_img`` highest scores."""
    keep = ops.batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def clip_to_image(boxes: Tensor, size: Sequence[int]) -> Tensor:
    """Clip xyxy boxes to (height, width) = ``size[0], size[1]`` (traced sizes stay in the graph)."""
    return clip_boxes(boxes, (size[0], size[1]))


def flatten_head_output(x: Tensor, columns: int) -> Tensor:
    """(N, A * columns, H, W) -> (N, H * W * A, columns): the order of the anchors (y, x, anchor)."""
    n, _, h, w = x.shape
    return x.view(n, -1, columns, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, columns)
