"""Semantic segmentation runner.

Batches are ``(images [B,3,H,W], targets [B,H,W] long, metas)``; images of different sizes are
padded bottom/right (image 0, target 255 = ignore) and ``meta["input_size"]`` keeps the unpadded
size. Inference options come from the config's ``test:`` section (owned by this task) and apply to
every evaluation:

    test:
      mode: whole          # whole | slide
      crop_size: [512, 1024]   # slide: window (h, w)
      stride: [341, 682]       # slide: step (h, w)
      scales: [1.0]            # multi-scale: input resized by each factor, probabilities averaged
      flip: false              # also average the horizontally flipped input
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Key
from ..registry import TASKS, ConfigError
from ..visualization import overlay_labels, to_display
from .base import Task

TEST_SCHEMA = {
    "mode": Key(str, "whole", choices=("whole", "slide")),
    "crop_size": Key((int, list, None), None, doc="slide: window (h, w)"),
    "stride": Key((int, list, None), None, doc="slide: step (h, w)"),
    "scales": Key(list, [1.0], doc="multi-scale inference factors"),
    "flip": Key(bool, False, doc="also average the horizontally flipped input"),
}


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

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        s = super().schema()
        s["test"] = dict(TEST_SCHEMA)
        return s

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__(cfg)
        test = dict(cfg.get("test") or {})
        self.mode = test.get("mode", "whole")
        if self.mode == "slide" and (test.get("crop_size") is None or test.get("stride") is None):
            raise ConfigError("test.mode=slide needs test.crop_size and test.stride")
        for key in ("crop_size", "stride"):
            v = test.get(key)
            if v is not None:
                try:
                    pair = _pair(v)
                except (TypeError, ValueError, IndexError):
                    pair = (0, 0)
                if min(pair) < 1:
                    raise ConfigError(f"test.{key}={v!r}: give a positive size or [h, w]")
        self.crop_size, self.stride = test.get("crop_size"), test.get("stride")
        try:
            self.scales: Sequence[float] = [float(s) for s in test.get("scales", [1.0])]
        except (TypeError, ValueError):
            raise ConfigError(f"test.scales={test.get('scales')!r}: give a list of positive factors") from None
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"test.scales={test.get('scales')!r}: give a list of positive factors, e.g. [1.0]")
        self.flip = bool(test.get("flip", False))

    # ---- data -----------------------------------------------------------------------------------
    def collate(self, items: List[Any]):
        images, targets, metas = zip(*items)
        H = max(i.shape[-2] for i in images)
        W = max(i.shape[-1] for i in images)
        batch_img = images[0].new_zeros(len(images), images[0].shape[0], H, W)
        batch_tgt = torch.full((len(images), H, W), 255, dtype=torch.long)
        for k, (im, t, m) in enumerate(zip(images, targets, metas)):
            h, w = im.shape[-2:]
            if tuple(t.shape[-2:]) != (h, w):
                raise ValueError(f"{m.get('path')}: transformed image {tuple(im.shape[-2:])} and mask "
                                 f"{tuple(t.shape[-2:])} differ in size; check the transforms")
            batch_img[k, :, :h, :w] = im
            batch_tgt[k, :h, :w] = t
        return batch_img, batch_tgt, list(metas)

    def check_compatible(self, model: nn.Module, dataset, split: str) -> None:
        inner = getattr(model, "module", model)
        n_model, n_data = getattr(inner, "num_classes", None), getattr(dataset, "num_classes", None)
        if n_model is not None and n_data is not None and n_model != n_data:
            raise ConfigError(f"the model predicts {n_model} classes but data.{split} has {n_data} "
                              f"({', '.join(map(str, getattr(dataset, 'classes', [])[:6]))} ...): set the head's "
                              f"num_classes to {n_data}")

    # ---- evaluation -----------------------------------------------------------------------------
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

    # ---- pictures -------------------------------------------------------------------------------
    def dummy_target(self, x: torch.Tensor) -> Any:
        return torch.full(x.shape[-2:], 255, dtype=torch.long)

    def _palette(self, dataset, n: int) -> np.ndarray:
        pal = getattr(dataset, "palette", None)
        if pal is None:
            from ..data.datasets.segmentation import voc_palette
            pal = voc_palette()[:max(n, 1)]
        return np.asarray(pal)

    def draw_prediction(self, image: torch.Tensor, output: Any, meta: Dict[str, Any], dataset,
                        score_thr: float = 0.0) -> np.ndarray:
        h, w = meta["input_size"]
        labels = output[:, :h, :w].argmax(0)  # drop collate padding; overlay_labels resizes to the image
        return overlay_labels(to_display(image), labels, self._palette(dataset, output.shape[0]))

    def draw_sample(self, image: torch.Tensor, target: Any, dataset) -> np.ndarray:
        return overlay_labels(self.display_image(image, dataset), target,
                              self._palette(dataset, getattr(dataset, "num_classes", 256)))
