"""DFNet ("Dongfeng") V1 and V2 from Partial Order Pruning (Li et al., "Partial Order Pruning: for Best
Speed/Accuracy Trade-off in Neural Architecture Search", CVPR 2019).

The search kept the plain ResNet BasicBlock and chose only depth and width per stage, so the
networks are ResNet-like: a stem of two stride-2 3x3 convolutions (no max-pool), then stages of
BasicBlocks. A stage may end with a few wider blocks at the same resolution (the ``*_2`` stages of
V2, ``stage5`` of V1): the search found widening late cheaper on GPUs than widening early. Layouts
follow the authors' released prototxt files (lixincn2015/Partial-Order-Pruning):

    DF1 (dfnet_v1): stage2 3x64 s2 | stage3 3x128 s2 | stage4 3x256 s2 | stage5 1x512
    DF2 (dfnet_v2): stage2_1 2x64 s2, stage2_2 1x128 | stage3_1 10x128 s2, stage3_2 1x256 |
                    stage4_1 4x256 s2, stage4_2 2x512

Registered in ``archs`` as ``dfnet_v1`` and ``dfnet_v2``. Top-level children follow torchvision's
layout (``conv1``, ``conv2``, stages, ``avgpool``, ``fc``), so ``FeatureBackbone`` levels 0..4 are
strides 2, 4, 8, 16, 32 as for ResNet (C2..C5 = levels 1..4).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from ...registry import ARCHS, ConfigError

# (child name, output channels, number of blocks, stride of the first block)
StageSpec = Tuple[str, int, int, int]
DFNET_V1: Sequence[StageSpec] = (("stage2", 64, 3, 2), ("stage3", 128, 3, 2), ("stage4", 256, 3, 2),
                                 ("stage5", 512, 1, 1))
DFNET_V2: Sequence[StageSpec] = (("stage2_1", 64, 2, 2), ("stage2_2", 128, 1, 1),
                                 ("stage3_1", 128, 10, 2), ("stage3_2", 256, 1, 1),
                                 ("stage4_1", 256, 4, 2), ("stage4_2", 512, 2, 1))


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels),
        act=nn.ReLU(inplace=True),
    ))


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    # a 1x1 projection wherever the shape changes (the prototxt's skipConv), identity otherwise
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    layers = [BasicBlock(in_channels, out_channels, stride, downsample)]
    layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class DFNet(nn.Module):
    """Args:
        stages: ``(child name, channels, blocks, stride)`` per stage (``DFNET_V1``, ``DFNET_V2``).
        zero_init_residual: start each block's last BatchNorm at zero (torchvision's ResNet option).
    """

    def __init__(self, stages: Sequence[StageSpec], num_classes: int = 1000, stem_channels: Tuple[int, int] = (32, 64),
                 zero_init_residual: bool = False):
        super().__init__()
        self.conv1 = _conv_bn_relu(3, stem_channels[0], 2)
        self.conv2 = _conv_bn_relu(stem_channels[0], stem_channels[1], 2)
        in_ch = stem_channels[1]
        self.stage_names = []
        for name, out_ch, blocks, stride in stages:
            setattr(self, name, _stage(in_ch, out_ch, blocks, stride))
            self.stage_names.append(name)
            in_ch = out_ch
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _builder(name: str, stages: Sequence[StageSpec], paper_name: str):
    def build(num_classes: int = 1000, pretrained: Optional[str] = None, zero_init_residual: bool = False,
              **kwargs) -> nn.Module:
        if kwargs:
            raise ConfigError(f"{name}: unknown arguments {sorted(kwargs)} (it takes num_classes, pretrained and "
                              f"zero_init_residual)")
        net = DFNet(stages, num_classes, zero_init_residual=zero_init_residual)
        if pretrained:
            from ...utils.weights import load_weights
            load_weights(net, pretrained)
        return net

    build.__name__ = name
    build.__doc__ = f"{paper_name} from Partial Order Pruning (CVPR 2019): plain BasicBlock stages"
    return build


ARCHS.register("dfnet_v1", obj=_builder("dfnet_v1", DFNET_V1, "DFNet V1 (DF1)"))
ARCHS.register("dfnet_v2", obj=_builder("dfnet_v2", DFNET_V2, "DFNet V2 (DF2)"))
