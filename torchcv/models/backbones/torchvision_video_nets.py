"""The action recognition networks of the seed's torchvision.models list (pretrained on
Kinetics-400 there), registered by torchvision's names in the ``archs`` registry next to the image
architectures: ``r3d_18`` (3-D ResNet), ``mc3_18`` (mixed convolutions: 3-D in the early layers,
2-D after) and ``r2plus1d_18`` ((2+1)-D: each 3-D convolution split into spatial then temporal).

Input ``[B, 3, T, H, W]`` (RGB in [0, 1], Kinetics mean/std normalised), output logits
``[B, num_classes]``. The builders take the same ``num_classes`` / ``pretrained`` (a local
torchvision-format weights file, never downloaded) as the image ones; their ``video`` attribute
tells ``VideoClassifier`` that they take clips.
"""
from __future__ import annotations

from typing import Optional

import torchvision
from torch import nn

from ...registry import ARCHS

VIDEO_ARCH_NAMES = ["r3d_18", "mc3_18", "r2plus1d_18"]


def build_torchvision_video_net(arch: str, num_classes: int = 400, pretrained: Optional[str] = None,
                                **kwargs) -> nn.Module:
    net = getattr(torchvision.models.video, arch)(weights=None, num_classes=num_classes, **kwargs)
    if pretrained:
        from ...utils.weights import load_weights
        load_weights(net, pretrained)
    return net


def _builder(arch: str):
    def build(num_classes: int = 400, pretrained: Optional[str] = None, **kwargs) -> nn.Module:
        return build_torchvision_video_net(arch, num_classes, pretrained, **kwargs)

    build.__name__ = arch
    build.__doc__ = f"torchvision.models.video.{arch} (extra keyword arguments go to its constructor)"
    build.video = True  # takes clips [B, 3, T, H, W]
    return build


for _arch in VIDEO_ARCH_NAMES:
    ARCHS.register(_arch, obj=_builder(_arch))
