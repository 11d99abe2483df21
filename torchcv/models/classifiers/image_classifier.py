"""Image classifier: a registered torchvision architecture plus the training loss.

Train mode: ``model(images, labels)`` -> ``{'loss_cls': ...}`` (plus ``loss_aux`` for GoogLeNet /
Inception v3 auxiliary heads). Eval mode: ``model(images)`` -> logits ``[B, num_classes]``.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from ...registry import ARCHS, MODELS, ConfigError


@MODELS.register()
class ImageClassifier(nn.Module):
    def __init__(self, arch: str, num_classes: int, pretrained: Optional[str] = None,
                 arch_kwargs: Optional[dict] = None, label_smoothing: float = 0.0,
                 mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, aux_weight: float = 0.4):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"model.num_classes must be >= 2, got {num_classes}")
        self.arch = arch
        self.num_classes = num_classes
        self.net = ARCHS.get(arch)(num_classes=num_classes, pretrained=pretrained, **(arch_kwargs or {}))
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight
        mixers = []
        if mixup_alpha > 0:
            mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self.mix = v2.RandomChoice(mixers) if mixers else None

    def forward(self, images: torch.Tensor, targets: Optional[torch.Tensor] = None):
        if not self.training:
            out = self.net(images)
            return out[0] if isinstance(out, tuple) else out
        if targets is None:
            raise ValueError("ImageClassifier in train mode needs targets: model(images, labels)")
        if self.mix is not None:
            images, targets = self.mix(images, targets)  # targets become soft labels [B, C]
        out = self.net(images)
        aux = []
        if isinstance(out, tuple):  # GoogLeNet / Inception v3 return (logits, aux...) in train mode
            out, aux = out[0], [a for a in out[1:] if a is not None]
        losses: Dict[str, torch.Tensor] = {"loss_cls": F.cross_entropy(out, targets, label_smoothing=self.label_smoothing)}
        if aux:
            losses["loss_aux"] = self.aux_weight * sum(
                F.cross_entropy(a, targets, label_smoothing=self.label_smoothing) for a in aux) / len(aux)
        return losses
