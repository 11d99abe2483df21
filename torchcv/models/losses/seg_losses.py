"""Pixel-wise losses for semantic segmentation."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES, ConfigError


@LOSSES.register()
class SegCrossEntropyLoss(nn.Module):
    """Cross-entropy over pixels, ignoring ``ignore_index``.

    Args:
        class_weight: one weight per class (rare classes up-weighted), or None.
        ohem_thresh: online hard example mining: when set, only pixels whose probability of the true
            class is below this threshold count, but never fewer than ``ohem_min_kept`` pixels
            (the hardest ones) per batch.
        loss_weight: multiplies the result.
    """

    def __init__(self, ignore_index: int = 255, class_weight: Optional[Sequence[float]] = None,
                 ohem_thresh: Optional[float] = None, ohem_min_kept: int = 10000, loss_weight: float = 1.0):
        super().__init__()
        if ohem_thresh is not None and not 0.0 < ohem_thresh <= 1.0:
            raise ConfigError(f"SegCrossEntropyLoss.ohem_thresh={ohem_thresh}: must be in (0, 1]")
        self.ignore_index = ignore_index
        self.ohem_thresh, self.ohem_min_kept = ohem_thresh, int(ohem_min_kept)
        self.loss_weight = loss_weight
        self.register_buffer("class_weight", torch.tensor(class_weight, dtype=torch.float32)
                             if class_weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.class_weight is not None and self.class_weight.numel() != logits.shape[1]:
            raise ConfigError(f"SegCrossEntropyLoss.class_weight has {self.class_weight.numel()} entries but the "
                              f"model predicts {logits.shape[1]} classes")
        weight = self.class_weight.to(logits.dtype) if self.class_weight is not None else None
        if self.ohem_thresh is None:
            return self.loss_weight * F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index)
        pixel_loss = F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index,
                                     reduction="none").flatten()
        valid = target.flatten() != self.ignore_index
        n_valid = int(valid.sum())
        if n_valid == 0:
            return pixel_loss.sum() * 0.0
        with torch.no_grad():
            prob = F.softmax(logits.float(), dim=1)
            safe_t = target.clone()
            safe_t[~valid.view_as(target)] = 0
            p_true = prob.gather(1, safe_t.unsqueeze(1)).flatten()
            p_true[~valid] = 2.0  # never selected
            keep = p_true < self.ohem_thresh
            min_kept = min(self.ohem_min_kept, n_valid)
            if int(keep.sum()) < min_kept:
                # threshold so that the ``min_kept`` hardest (lowest probability) pixels are kept
                kth = torch.kthvalue(p_true[valid], min_kept).values
                keep = p_true <= kth
        return self.loss_weight * pixel_loss[keep].mean()
