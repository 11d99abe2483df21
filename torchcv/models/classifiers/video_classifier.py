"""Video classifier: a registered clip network (``r3d_18``, ``mc3_18``, ``r2plus1d_18`` ...) plus the
training loss.

Train mode: ``model(clips, labels)`` -> ``{'loss_cls': ...}``; eval mode: ``model(clips)`` -> logits
``[B, num_classes]`` of each clip (the video task's evaluator averages a video's clips). Clips are
``[B, 3, T, H, W]``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import ARCHS, MODELS, ConfigError


@MODELS.register()
class VideoClassifier(nn.Module):
    def __init__(self, arch: str, num_classes: int, pretrained: Optional[str] = None,
                 arch_kwargs: Optional[dict] = None, label_smoothing: float = 0.0, width: Optional[float] = None):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"model.num_classes must be >= 2, got {num_classes}")
        builder = ARCHS.get(arch)
        if not getattr(builder, "video", False):
            video = [n for n in ARCHS.names() if getattr(ARCHS.get(n), "video", False)]
            raise ConfigError(f"model.arch={arch} is an image network; VideoClassifier needs a clip network: "
                              f"{', '.join(video)} (ImageClassifier takes image architectures)")
        self.arch = arch
        self.num_classes = num_classes
        arch_kwargs = dict(arch_kwargs or {})
        if width is not None:  # model.width: the channel multiplier of the clip network (1.0: torchvision's)
            arch_kwargs["width"] = width
        self.net = builder(num_classes=num_classes, pretrained=pretrained, **arch_kwargs)
        self.label_smoothing = label_smoothing

    def forward(self, clips: torch.Tensor, targets: Optional[torch.Tensor] = None):
        if clips.dim() != 5:
            raise ValueError(f"VideoClassifier takes clips [B, 3, T, H, W], got shape {tuple(clips.shape)}")
        logits = self.net(clips)
        if not self.training:
            return logits
        if targets is None:
            raise ValueError("VideoClassifier in train mode needs targets: model(clips, labels)")
        return {"loss_cls": F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)}
