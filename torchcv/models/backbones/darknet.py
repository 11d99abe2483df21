"""Darknet-53 (YOLOv3's backbone) and the reader / writer of Darknet's binary weight files.

Darknet-53: a 3x3 conv, then five stages, each a stride-2 3x3 conv and 1, 2, 8, 8, 4 residual
blocks (1x1 conv to half the channels, 3x3 conv back, added to the input); every conv is followed
by BatchNorm and LeakyReLU(0.1). Registered in ``archs`` as ``darknet53`` (with an ImageNet-style
classifier, so ``FeatureBackbone(arch: darknet53)`` taps it like any network: levels 0..4 are the
stages, strides 2..32). ``width_mult`` and ``depths`` give smaller variants for CPUs.

Darknet weight files (``yolov3.weights``, ``darknet53.conv.74``): a header of three int32
(major, minor, revision) and the number of images seen (int64 when major * 10 + minor >= 2, else
int32), then float32 values for every convolutional layer in the order of the .cfg file: with
batch_normalize, the BN's beta, gamma, running mean, running variance, then the conv weights
(out, in, k, k); without, the conv biases then the weights. ``darknet53.conv.74`` holds the
first 74 layers (the 52 convolutions of the backbone) and nothing else.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ...registry import ARCHS, ConfigError
from ...utils.errors import CheckpointError

DARKNET53_DEPTHS = (1, 2, 8, 8, 4)


class ConvBNLeaky(nn.Sequential):
    """Darknet's ``[convolutional]`` with ``batch_normalize=1``, ``activation=leaky``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)),
            ("bn", nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum)),
            ("act", nn.LeakyReLU(0.1, inplace=True)),
        ]))


class DarknetResidual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvBNLeaky(channels, channels // 2, 1)
        self.conv2 = ConvBNLeaky(channels // 2, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class Darknet53(nn.Module):
    """Args:
        num_classes: outputs of the classifier (avgpool + fc), used only for ImageNet training.
        width_mult: multiplies every channel count (32 ... 1024).
        depths: residual blocks per stage (Darknet-53: 1, 2, 8, 8, 4).
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, depths: Sequence[int] = DARKNET53_DEPTHS):
        super().__init__()
        if len(depths) != 5:
            raise ConfigError(f"Darknet53.depths: give 5 stage depths, got {list(depths)}")
        ch = [max(8, int(round(c * width_mult))) for c in (32, 64, 128, 256, 512, 1024)]
        self.stem = ConvBNLeaky(3, ch[0], 3)
        for i, n in enumerate(depths):
            stage = [ConvBNLeaky(ch[i], ch[i + 1], 3, stride=2)] + [DarknetResidual(ch[i + 1]) for _ in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch[-1], num_classes)
        self.out_channels = ch[3:]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for i in range(1, 6):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def darknet53(num_classes: int = 1000, pretrained: Optional[str] = None, **kwargs) -> Darknet53:
    """Darknet-53. ``pretrained``: a .pth state_dict, or a Darknet binary file (``darknet53.conv.74``,
    ``*.weights``) whose first 52 convolutions are the backbone."""
    net = Darknet53(num_classes, **kwargs)
    if pretrained:
        if pretrained.endswith((".pth", ".pt")):
            from ...utils.weights import load_weights
            load_weights(net, pretrained)
        else:
            load_darknet_weights(darknet_layers(net), pretrained, partial=True)
    return net


ARCHS.register("darknet53", obj=darknet53)


# ---- Darknet's binary weight files -------------------------------------------------------------
DarknetLayer = Tuple[nn.Conv2d, Optional[nn.Module]]


def darknet_layers(module: nn.Module) -> List[DarknetLayer]:
    """(conv, BN or None) of every Darknet convolutional layer inside ``module``, in definition
    order: each ConvBNLeaky, and each other Conv2d with a bias (YOLO's prediction convs)."""
    out: List[DarknetLayer] = []
    for m in module.modules():
        if isinstance(m, ConvBNLeaky):
            out.append((m.conv, m.bn))
        elif type(m) is not nn.Conv2d:
            continue
        elif m.bias is not None:
            out.append((m, None))
    return out


def _layer_sizes(layer: DarknetLayer) -> int:
    conv, bn = layer
    return conv.weight.numel() + (4 * bn.num_features if bn is not None else conv.out_channels)


def read_darknet_file(path: str) -> Tuple[Tuple[int, int, int, int], np.ndarray]:
    """(header (major, minor, revision, seen), float32 values) of a Darknet weight file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"Darknet weights not found: {path}")
    with open(path, "rb") as f:
        head = np.frombuffer(f.read(12), dtype=np.int32)
        if head.size != 3:
            raise CheckpointError(f"{path}: too short for a Darknet weight file (no 12-byte header)")
        major, minor, revision = (int(v) for v in head)
        wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
        seen_bytes = f.read(8 if wide else 4)
        seen = int(np.frombuffer(seen_bytes, dtype=np.int64 if wide else np.int32)[0]) if seen_bytes else 0
        data = f.read()
    if len(data) % 4:
        raise CheckpointError(f"{path}: {len(data)} bytes after the header is not a whole number of float32 values; "
                              f"the file is truncated or not a Darknet weight file")
    return (major, minor, revision, seen), np.frombuffer(data, dtype=np.float32)


@torch.no_grad()
def load_darknet_weights(layers: List[DarknetLayer], path: str, partial: bool = False) -> int:
    """Fill ``layers`` in order from a Darknet file; returns how many layers were loaded.

    ``partial``: the file may end at a layer boundary before the last layer (``darknet53.conv.74``
    holds only the backbone). Anything else -- a file ending inside a layer, values left over
    after the last layer -- means another network (or another number of classes) and is an error.
    """
    _, values = read_darknet_file(path)
    pos = 0
    for n, layer in enumerate(layers):
        need = _layer_sizes(layer)
        if pos == values.size and partial:
            return n
        if pos + need > values.size:
            raise CheckpointError(f"{path}: ends inside convolutional layer {n} (needs {need} values, {values.size - pos} "
                                  f"left): the file is for another network, or truncated")
        conv, bn = layer
        parts = [bn.bias, bn.weight, bn.running_mean, bn.running_var] if bn is not None else [conv.bias]
        for t in parts + [conv.weight]:
            t.copy_(torch.from_numpy(values[pos:pos + t.numel()].copy()).view_as(t))
            pos += t.numel()
    if pos != values.size:
        raise CheckpointError(f"{path}: {values.size - pos} values left after the model's {len(layers)} convolutional "
                              f"layers: the file is for another network or another number of classes")
    return len(layers)


@torch.no_grad()
def save_darknet_weights(layers: List[DarknetLayer], path: str, header: Tuple[int, int, int] = (0, 2, 0),
                         seen: int = 0) -> None:
    """Write ``layers`` in Darknet's layout (readable by Darknet itself)."""
    chunks = []
    for conv, bn in layers:
        parts = [bn.bias, bn.weight, bn.running_mean, bn.running_var] if bn is not None else [conv.bias]
        chunks += [t.detach().float().cpu().reshape(-1).numpy() for t in parts + [conv.weight]]
    major, minor, _ = header
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    with open(path, "wb") as f:
        f.write(np.asarray(header, dtype=np.int32).tobytes())
        f.write(np.asarray([seen], dtype=np.int64 if wide else np.int32).tobytes())
        f.write(np.concatenate(chunks).astype(np.float32).tobytes())
