"""Shared pieces of two-stage detectors: anchors, box coding, matching and sampling.

The arithmetic follows torchvision's detection models step for step (same order of operations,
same dtypes) so that a torchvision ``state_dict`` loaded into our models gives the same outputs.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """(dx, dy, dw, dh) deltas of boxes relative to reference boxes, scaled by ``weights``."""

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), clip: float = BBOX_XFORM_CLIP):
        self.weights = tuple(float(w) for w in weights)
        self.clip = clip

    def encode(self, gt: Tensor, ref: Tensor) -> Tensor:
        wx, wy, ww, wh = self.weights
        ref_w = ref[:, 2] - ref[:, 0]
        ref_h = ref[:, 3] - ref[:, 1]
        ref_x = ref[:, 0] + 0.5 * ref_w
        ref_y = ref[:, 1] + 0.5 * ref_h
        gt_w = gt[:, 2] - gt[:, 0]
        gt_h = gt[:, 3] - gt[:, 1]
        gt_x = gt[:, 0] + 0.5 * gt_w
        gt_y = gt[:, 1] + 0.5 * gt_h
        return torch.stack((wx * (gt_x - ref_x) / ref_w, wy * (gt_y - ref_y) / ref_h,
                            ww * torch.log(gt_w / ref_w), wh * torch.log(gt_h / ref_h)), dim=1)

    def decode(self, codes: Tensor, ref: Tensor) -> Tensor:
        """``codes`` (N, 4*K) against ``ref`` (N, 4) -> boxes (N, K, 4)."""
        ref = ref.to(codes.dtype)
        wx, wy, ww, wh = self.weights
        w = ref[:, 2] - ref[:, 0]
        h = ref[:, 3] - ref[:, 1]
        cx = ref[:, 0] + 0.5 * w
        cy = ref[:, 1] + 0.5 * h
        dx = codes[:, 0::4] / wx
        dy = codes[:, 1::4] / wy
        dw = torch.clamp(codes[:, 2::4] / ww, max=self.clip)
        dh = torch.clamp(codes[:, 3::4] / wh, max=self.clip)
        px = dx * w[:, None] + cx[:, None]
        py = dy * h[:, None] + cy[:, None]
        half_w = torch.tensor(0.5, dtype=codes.dtype, device=codes.device) * (torch.exp(dw) * w[:, None])
        half_h = torch.tensor(0.5, dtype=codes.dtype, device=codes.device) * (torch.exp(dh) * h[:, None])
        return torch.stack((px - half_w, py - half_h, px + half_w, py + half_h), dim=2)


class Matcher:
    """Assign each prediction the ground truth of highest IoU; -1 below ``low``, -2 in between."""

    BELOW = -1
    BETWEEN = -2

    def __init__(self, high: float, low: float, allow_low_quality: bool = False):
        if low > high:
            raise ValueError(f"Matcher: low threshold {low} > high threshold {high}")
        self.high, self.low, self.allow_low_quality = high, low, allow_low_quality

    def __call__(self, iou: Tensor) -> Tensor:
        """``iou``: (num_gt, num_pred) -> matched gt index per prediction."""
        if iou.numel() == 0:
            if iou.shape[0] == 0:
                return torch.full((iou.shape[1],), self.BELOW, dtype=torch.int64, device=iou.device)
            raise ValueError("Matcher: no predictions to match against ground truth")
        best, idx = iou.max(dim=0)
        original = idx.clone() if self.allow_low_quality else None
        idx[best < self.low] = self.BELOW
        idx[(best >= self.low) & (best < self.high)] = self.BETWEEN
        if original is not None:
            # every gt keeps the predictions that overlap it most, even below the threshold
            best_per_gt, _ = iou.max(dim=1)
            _, pred = torch.where(iou == best_per_gt[:, None])
            idx[pred] = original[pred]
        return idx


class BalancedSampler:
    """Sample ``batch_size`` per image with at most ``positive_fraction`` positives (labels >= 1)."""

    def __init__(self, batch_size: int, positive_fraction: float):
        self.batch_size, self.positive_fraction = batch_size, positive_fraction

    def __call__(self, labels: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        pos_masks, neg_masks = [], []
        for lab in labels:
            pos = torch.where(lab >= 1)[0]
            neg = torch.where(lab == 0)[0]
            n_pos = min(int(self.batch_size * self.positive_fraction), pos.numel())
            n_neg = min(self.batch_size - n_pos, neg.numel())
            pos = pos[torch.randperm(pos.numel(), device=pos.device)[:n_pos]]
            neg = neg[torch.randperm(neg.numel(), device=neg.device)[:n_neg]]
            pm = torch.zeros_like(lab, dtype=torch.uint8)
            nm = torch.zeros_like(lab, dtype=torch.uint8)
            pm[pos] = 1
            nm[neg] = 1
            pos_masks.append(pm)
            neg_masks.append(nm)
        return pos_masks, neg_masks


def split_per_image(x: Tensor, counts: List[int]) -> List[Tensor]:
    """``x.split(counts)``; a single image keeps ``x`` whole, so a traced (exported) model does not
    freeze that image's count into the graph."""
    if len(counts) == 1:
        return [x]
    return list(x.split(counts, 0))


def clip_boxes(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    h, w = size
    if torch.jit.is_tracing():  # the size is a traced value: keep it in the graph, not a constant
        zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
        x = torch.min(torch.max(boxes[..., 0::2], zero), torch.as_tensor(w).to(boxes))
        y = torch.min(torch.max(boxes[..., 1::2], zero), torch.as_tensor(h).to(boxes))
        return torch.stack((x, y), dim=boxes.dim()).reshape(boxes.shape)
    x = boxes[..., 0::2].clamp(min=0, max=w)
    y = boxes[..., 1::2].clamp(min=0, max=h)
    return torch.stack((x, y), dim=boxes.dim()).reshape(boxes.shape)


def keep_large(boxes: Tensor, min_size: float) -> Tensor:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return torch.where((w >= min_size) & (h >= min_size))[0]


class AnchorGenerator(nn.Module):
    """Anchors for every feature level: ``sizes[i]`` x ``aspect_ratios[i]`` at each map position."""

    def __init__(self, sizes: Sequence[Sequence[int]] = ((32,), (64,), (128,), (256,), (512,)),
                 aspect_ratios: Sequence[Sequence[float]] = ((0.5, 1.0, 2.0),) * 5):
        super().__init__()
        sizes = [tuple(s) if isinstance(s, (list, tuple)) else (s,) for s in sizes]
        if aspect_ratios and not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = [tuple(aspect_ratios)] * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"AnchorGenerator: {len(sizes)} size groups but {len(aspect_ratios)} ratio groups")
        self.sizes, self.aspect_ratios = sizes, [tuple(a) for a in aspect_ratios]
        self.cell_anchors = [self._cell(s, a) for s, a in zip(self.sizes, self.aspect_ratios)]

    @staticmethod
    def _cell(scales, ratios, dtype=torch.float32) -> Tensor:
        scales = torch.as_tensor(scales, dtype=dtype)
        ratios = torch.as_tensor(ratios, dtype=dtype)
        h_ratio = torch.sqrt(ratios)
        w_ratio = 1 / h_ratio
        ws = (w_ratio[:, None] * scales[None, :]).view(-1)
        hs = (h_ratio[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def num_anchors_per_location(self) -> List[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def forward(self, batch_shape: Tuple[int, int], feature_maps: List[Tensor], num_images: int) -> List[Tensor]:
        if len(feature_maps) != len(self.cell_anchors):
            raise ValueError(f"AnchorGenerator has {len(self.cell_anchors)} levels of sizes but the neck gives "
                             f"{len(feature_maps)} feature maps: make anchor sizes one group per level")
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        per_level = []
        for fmap, cell in zip(feature_maps, self.cell_anchors):
            gh, gw = fmap.shape[-2:]
            sh = torch.empty((), dtype=torch.int64, device=device).fill_(batch_shape[0] // gh)
            sw = torch.empty((), dtype=torch.int64, device=device).fill_(batch_shape[1] // gw)
            xs = torch.arange(0, gw, dtype=torch.int32, device=device) * sw
            ys = torch.arange(0, gh, dtype=torch.int32, device=device) * sh
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            xx, yy = xx.reshape(-1), yy.reshape(-1)
            shifts = torch.stack((xx, yy, xx, yy), dim=1)
            cell = cell.to(dtype=dtype, device=device)
            per_level.append((shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4))
        anchors = torch.cat(per_level)
        return [anchors for _ in range(num_images)]


def check_options(given: Dict, defaults: Dict, where: str) -> Dict:
    from ...registry import ConfigError, did_you_mean
    given = dict(given or {})
    for k in given:
        if k not in defaults:
            raise ConfigError(f"{where}: unknown option '{k}'.{did_you_mean(k, defaults)} "
                              f"Accepted: {', '.join(defaults)}")
    out = dict(defaults)
    out.update(given)
    return out


def is_number(v) -> bool:
    """A real number from a config (YAML's true / false are not numbers here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_loss_weights(given: Dict, defaults: Dict[str, float], where: str) -> Dict[str, float]:
    """``check_options`` for loss multipliers: known names, each a number >= 0."""
    out = check_options(given, defaults, where)
    from ...registry import ConfigError
    for k, v in out.items():
        if not is_number(v) or v < 0:
            raise ConfigError(f"{where}.{k}={v!r}: give a number >= 0 (1 keeps the loss as it is, 0 switches it off)")
    return {k: float(v) for k, v in out.items()}


def check_targets(name: str, targets: Optional[List[Dict[str, Tensor]]]) -> None:
    """Training targets every detector needs: present, (N, 4) xyxy boxes with positive extent."""
    if targets is None:
        raise ValueError(f"{name}: targets are required in training mode")
    for i, t in enumerate(targets):
        b = t["boxes"]
        if b.dim() != 2 or b.shape[-1] != 4:
            raise ValueError(f"target {i}: boxes must be (N, 4) xyxy, got {tuple(b.shape)}")
        bad = (b[:, 2:] <= b[:, :2]).any(dim=1)
        if bad.any():
            raise ValueError(f"target {i}: degenerate box {b[bad][0].tolist()} (x2 <= x1 or y2 <= y1); "
                             f"the dataset should drop or fix it")
