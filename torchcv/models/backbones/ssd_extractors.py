"""The feature extractors of SSD300-VGG16 and SSDlite320-MobileNetV3, laid out like torchvision's
(``features.*``, ``scale_weight``, ``extra.*``) so its SSD checkpoints load as they are.

They are not ``FeatureBackbone`` taps: SSD changes the network it reads (VGG's third max-pool
rounds up, the fifth is replaced by a 3x3/1 pool and the atrous fc6/fc7 convolutions, conv4_3 is
L2-normalised with a learned scale; SSDlite splits a MobileNetV3 block after its expansion conv)
and appends extra stride-2 blocks. The networks themselves come from the ``archs`` registry.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from ...registry import BACKBONES, ConfigError
from ..heads.ssd_head import normal_init, xavier_init
from .features import build_network


def _freeze(modules: List[nn.Module]) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


def _last_conv_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


@BACKBONES.register()
class SSDVGGExtractor(nn.Module):
    """Args:
        arch: a VGG without BatchNorm from the ``archs`` registry (SSD300 uses vgg16).
        pretrained: local path to torchvision-format VGG weights (ImageNet ``features`` suffice).
        highres: one more extra block (SSD512's conv12_2).
        trainable_layers: VGG stages left trainable, counted from the last (0-5; torchvision: 4
            with pretrained weights, 5 without).
    Outputs "0".."5": conv4_3 (L2-normalised x scale_weight), fc7, conv8_2 ... conv11_2.
    """

    def __init__(self, arch: str = "vgg16", pretrained: Optional[str] = None, highres: bool = False,
                 trainable_layers: int = 5):
        super().__init__()
        features = build_network(arch, pretrained).features
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        if len(pools) != 5 or any(isinstance(m, nn.BatchNorm2d) for m in features):
            raise ConfigError(f"SSDVGGExtractor.arch: '{arch}' is not a VGG without BatchNorm (use vgg16)")
        stages = [0] + pools[:-1]
        if not 0 <= trainable_layers <= len(stages):
            raise ConfigError(f"SSDVGGExtractor.trainable_layers={trainable_layers}: use 0..{len(stages)}")
        freeze_before = len(features) if trainable_layers == 0 else stages[len(stages) - trainable_layers]
        _freeze(list(features[:freeze_before]))
        pool3, pool4 = pools[2], pools[3]
        features[pool3].ceil_mode = True  # 75 -> 38 at 300 px, as in the paper
        self.scale_weight = nn.Parameter(torch.ones(512) * 20)
        self.features = nn.Sequential(*features[:pool4])  # up to conv4_3
        extra = nn.ModuleList([self._block(1024, 256, 512, stride=2, padding=1),  # conv8_2
                               self._block(512, 128, 256, stride=2, padding=1),   # conv9_2
                               self._block(256, 128, 256),                         # conv10_2
                               self._block(256, 128, 256)])                        # conv11_2
        if highres:
            extra.append(self._block(256, 128, 256, kernel=4))                     # conv12_2
        xavier_init(extra)
        fc = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(512, 1024, 3, padding=6, dilation=6),  # pool5, atrous fc6
                           nn.ReLU(inplace=True), nn.Conv2d(1024, 1024, 1), nn.ReLU(inplace=True))  # fc7
        xavier_init(fc)
        extra.insert(0, nn.Sequential(*features[pool4:-1], fc))  # conv5_x (pool5 replaced) and fc6/fc7
        self.extra = extra
        self.out_channels = [512] + [_last_conv_channels(b) for b in extra]

    @staticmethod
    def _block(cin: int, mid: int, cout: int, stride: int = 1, padding: int = 0, kernel: int = 3) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, mid, 1), nn.ReLU(inplace=True),
                             nn.Conv2d(mid, cout, kernel, stride=stride, padding=padding), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        x = self.features(x)
        out = [self.scale_weight.view(1, -1, 1, 1) * F.normalize(x)]
        for block in self.extra:
            x = block(x)
            out.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(out))


def _extra_block(cin: int, cout: int, norm: Callable[..., nn.Module]) -> nn.Sequential:
    mid = cout // 2
    act = nn.ReLU6
    return nn.Sequential(Conv2dNormActivation(cin, mid, kernel_size=1, norm_layer=norm, activation_layer=act),
                         Conv2dNormActivation(mid, mid, kernel_size=3, stride=2, groups=mid, norm_layer=norm,
                                              activation_layer=act),
                         Conv2dNormActivation(mid, cout, kernel_size=1, norm_layer=norm, activation_layer=act))


@BACKBONES.register()
class SSDLiteMobileNetExtractor(nn.Module):
    """Args:
        arch: ``mobilenet_v3_large`` / ``mobilenet_v3_small`` (or ``mobilenet_v2``) from ``archs``.
        pretrained: local path to torchvision-format ImageNet weights of ``arch``.
        trainable_layers: stages left trainable, counted from the last (0-6 for MobileNetV3-Large).
        reduced_tail: halve the channels of the last blocks (torchvision does when training from
            scratch); default: true without ``pretrained``.
        width_mult, min_depth: width of the extra blocks (and of the network).
        bn_eps, bn_momentum: BatchNorm settings of the whole extractor (torchvision: 0.001, 0.03).
    Outputs "0".."5": the C4 expansion (stride 16), the last block (stride 32), four extra blocks.
    """

    def __init__(self, arch: str = "mobilenet_v3_large", pretrained: Optional[str] = None, trainable_layers: int = 6,
                 reduced_tail: Optional[bool] = None, width_mult: float = 1.0, min_depth: int = 16,
                 bn_eps: float = 0.001, bn_momentum: float = 0.03):
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        kwargs = dict(norm_layer=norm, width_mult=width_mult)
        if arch.startswith("mobilenet_v3"):
            kwargs["reduced_tail"] = pretrained is None if reduced_tail is None else reduced_tail
        net = build_network(arch, pretrained, **kwargs)
        if pretrained is None:
            normal_init(net)
        features = net.features
        stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
        if not 0 <= trainable_layers <= len(stages):
            raise ConfigError(f"SSDLiteMobileNetExtractor.trainable_layers={trainable_layers}: use 0..{len(stages)}")
        freeze_before = len(features) if trainable_layers == 0 else stages[len(stages) - trainable_layers]
        _freeze(list(features[:freeze_before]))
        c4 = stages[-2]
        if getattr(features[c4], "use_res_connect", True):
            raise ConfigError(f"SSDLiteMobileNetExtractor: block {c4} of {arch} has a residual connection; "
                              f"the C4 tap needs a downsampling block")
        self.features = nn.Sequential(
            nn.Sequential(*features[:c4], features[c4].block[0]),    # up to the C4 block's expansion conv
            nn.Sequential(features[c4].block[1:], *features[c4 + 1:]))  # its depthwise conv to the end
        depth = lambda d: max(min_depth, int(d * width_mult))  # noqa: E731
        extra = nn.ModuleList([_extra_block(features[-1].out_channels, depth(512), norm),
                               _extra_block(depth(512), depth(256), norm),
                               _extra_block(depth(256), depth(256), norm),
                               _extra_block(depth(256), depth(128), norm)])
        normal_init(extra)
        self.extra = extra
        self.out_channels = [features[c4].block[0].out_channels, features[-1].out_channels] + \
                            [_last_conv_channels(b) for b in extra]

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        out = []
        for block in self.features:
            x = block(x)
            out.append(x)
        for block in self.extra:
            x = block(x)
            out.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(out))
