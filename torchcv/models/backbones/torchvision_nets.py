"""Every classification architecture of the seed's torchvision.models list, registered by name in
the ``archs`` registry (whole networks; feature extractors are in ``backbones``).

Each builder takes ``num_classes`` and an optional ``pretrained`` path to torchvision-format weights
on local disk (nothing is downloaded); a classifier layer whose shape differs from the file's (a
new number of classes) is left freshly initialised and reported, which is the fine-tuning flow.
"""
from __future__ import annotations

import logging
from typing import Optional

import torchvision
from torch import nn

from ...registry import ARCHS

logger = logging.getLogger("torchcv")

ARCH_NAMES = [
    "alexnet",
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "squeezenet1_0", "squeezenet1_1",
    "densenet121", "densenet161", "densenet169", "densenet201",
    "inception_v3", "googlenet",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    "resnext50_32x4d", "resnext101_32x8d",
    "wide_resnet50_2", "wide_resnet101_2",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
]


def build_torchvision_net(arch: str, num_classes: int = 1000, pretrained: Optional[str] = None,
                          **kwargs) -> nn.Module:
    builder = getattr(torchvision.models, arch)
    if arch in ("inception_v3", "googlenet"):
        kwargs.setdefault("aux_logits", True)
        kwargs.setdefault("init_weights", True)
    net = builder(weights=None, num_classes=num_classes, **kwargs)
    if pretrained:
        from ...utils.weights import load_weights
        load_weights(net, pretrained)
    return net


def _builder(arch: str):
    def build(num_classes: int = 1000, pretrained: Optional[str] = None, **kwargs) -> nn.Module:
        return build_torchvision_net(arch, num_classes, pretrained, **kwargs)

    build.__name__ = arch
    build.__doc__ = f"torchvision.models.{arch} (extra keyword arguments go to its constructor)"
    return build


for _arch in ARCH_NAMES:
    ARCHS.register(_arch, obj=_builder(_arch))
