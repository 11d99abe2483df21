"""Semantic segmentation runner.

Batches are ``(images [B,3,H,W], targets [B,H,W] long, metas)``; images of different sizes are
padded bottom/right (image 0, target 255 = ignore) and ``meta["size"]`` keeps the unpadded size.
Inference options come from the config's ``test:`` section and apply to every evaluation:

    test:
      mode: whole          # whole | slide
      crop_size: [512, 1024]   # slide: window (h, w)
      stride: [341, 682]       # slide: step (h, w)
      scales: [1.0]            # multi-scale: input resized by each factor, probabilities averaged
      flip: false              # also average the horizontally flipped input
      evaluator: {type: SegEvaluator}
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import TASKS, ConfigError
from .base import Task

_TEST_KEYS = {"mode", "crop_size", "stride", "scales", "flip", "evaluator"}


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def slide_logits(model: nn.Module, images: torch.Tensor, num_classes: int, crop, stride) -> torch.Tensor:
    """Run ``model`` on overlapping windows and average the logits where windows overlap."""
    ch, cw = _pair(crop)
    sh, sw = _pair(stride)
    B, _, H, W = images.shape
    ch, cw = min(ch, H), min(cw, W)
    out = images.new_zeros(B, num_classes, H, W)
    count = images.new_zeros(1, 1, H, W)
    rows = list(range(0, max(H - ch, 0) + 1, sh))
    cols = list(range(0, max(W - cw, 0) + 1, sw))
    if rows[-1] + ch < H:
        rows.append(H - ch)
    if cols[-1] + cw < W:
        cols.append(W - cw)
    for y in rows:
        for x in cols:
            out[:, :, y:y + ch, x:x + cw] += model(images[:, :, y:y + ch, x:x + cw]).float()
            count[:, :, y:y + ch, x:x + cw] += 1
    return out / count


@TASKS.register("segmentation")
class SegmentationTask(Task):
    default_evaluator = "SegEvaluator"

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__(cfg)
        test = dict(cfg.get("test") or {})
        unknown = set(test) - _TEST_KEYS
        if unknown:
            raise ConfigError(f"test: unknown key(s) {sorted(unknown)} for segmentation; accepted: {sorted(_TEST_KEYS)}")
        self.mode = test.get("mode", "whole")
        if self.mode not in ("whole", "slide"):
            raise ConfigError(f"test.mode='{self.mode}': use whole or slide")
        if self.mode == "slide" and ("crop_size" not in test or "stride" not in test):
            raise ConfigError("test.mode=slide needs test.crop_size and test.stride")
        self.crop_size, self.stride = test.get("crop_size"), test.get("stride")
        self.scales: Sequence[float] = [float(s) for s in test.get("scales", [1.0])]
        self.flip = bool(test.get("flip", False))

    # ---- data -----------------------------------------------------------------------------------
    def collate(self, items: List[Any]):
        images, targets, metas = zip(*items)
        H = max(i.shape[-2] for i in images)
        W = max(i.shape[-1] for i in images)
        batch_img = images[0].new_zeros(len(images), images[0].shape[0], H, W)
        batch_tgt = torch.full((len(images), H, W), 255, dtype=torch.long)
        out_metas = []
        for k, (im, t, m) in enumerate(zip(images, targets, metas)):
            h, w = im.shape[-2:]
            if tuple(t.shape[-2:]) != (h, w):
                raise ValueError(f"{m.get('path')}: transformed image {tuple(im.shape[-2:])} and mask "
                                 f"{tuple(t.shape[-2:])} differ in size; check the transforms")
            batch_img[k, :, :h, :w] = im
            batch_tgt[k, :h, :w] = t
            out_metas.append(dict(m, size=(h, w)))
        return batch_img, batch_tgt, out_metas

    def check_compatible(self, model: nn.Module, dataset, split: str) -> None:
        inner = getattr(model, "module", model)
        n_model, n_data = getattr(inner, "num_classes", None), getattr(dataset, "num_classes", None)
        if n_model is not None and n_data is not None and n_model != n_data:
            raise ConfigError(f"the model predicts {n_model} classes but data.{split} has {n_data} "
                              f"({', '.join(map(str, getattr(dataset, 'classes', [])[:6]))} ...): set the head's "
                              f"num_classes to {n_data}")

    # ---- evaluation -----------------------------------------------------------------------------
    def build_evaluator(self, dataset, split: str):
        if split == "test":
            ev = dict((self.cfg.get("test") or {}).get("evaluator") or {})
            ev.setdefault("keep_predictions", True)
            self.cfg = dict(self.cfg, test=dict(self.cfg.get("test") or {}, evaluator=ev))
        return super().build_evaluator(dataset, split)

    def _single(self, model: nn.Module, images: torch.Tensor, num_classes: int) -> torch.Tensor:
        if self.mode == "slide":
            return slide_logits(model, images, num_classes, self.crop_size, self.stride)
        return model(images).float()

    def predict(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "whole" and self.scales == [1.0] and not self.flip:
            return model(inputs)
        num_classes = getattr(getattr(model, "module", model), "num_classes")
        H, W = inputs.shape[-2:]
        probs: Optional[torch.Tensor] = None
        for s in self.scales:
            x = inputs if s == 1.0 else F.interpolate(inputs, scale_factor=s, mode="bilinear", align_corners=False)
            views = [(x, False)] + ([(x.flip(-1), True)] if self.flip else [])
            for v, flipped in views:
                logits = self._single(model, v, num_classes)
                if flipped:
                    logits = logits.flip(-1)
                if logits.shape[-2:] != (H, W):
                    logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
                p = logits.softmax(1)
                probs = p if probs is None else probs + p
        return probs
