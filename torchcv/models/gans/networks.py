"""The generators and discriminators of pix2pix and CycleGAN (Isola et al. 2017, Zhu et al. 2017),
built as in the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) so its trained
``latest_net_G.pth`` / ``latest_net_D.pth`` files load by name:

- ``unet_<N>`` (``unet_256``, ``unet_128``; also ``unet_64`` / ``unet_32`` for small images): a
  U-Net of log2(N) down-sampling blocks (4x4 stride-2 convolutions) and skip connections; an N x N
  input reaches 1 x 1 at the bottleneck, so image sides must be multiples of N. Dropout (0.5) sits
  in the innermost ngf*8 up-sampling blocks when enabled.
- ``resnet_<n>blocks`` (``resnet_9blocks``, ``resnet_6blocks``): 7x7 convolution, two stride-2
  down-samplings, ``n`` residual blocks, two transposed-convolution up-samplings, 7x7 convolution
  and tanh; reflection padding by default.
- discriminators ``basic`` (PatchGAN with 3 layers: 70x70 receptive field), ``n_layers`` (PatchGAN
  with ``n_layers``) and ``pixel`` (1x1 PixelGAN). They return logits (no sigmoid).

Normalisation ``batch`` (BatchNorm2d, affine), ``instance`` (InstanceNorm2d without affine or running
statistics) or ``none``; convolutions carry a bias only where no affine normalisation follows.
Weights start from N(0, init_gain) (BatchNorm scales from N(1, init_gain)), biases at 0.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional

import torch
from torch import nn

from ...registry import ConfigError, did_you_mean
from ...utils.weights import extract_state_dict, load_checkpoint

NORMS = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
PADDINGS = ("reflect", "replicate", "zero")
GENERATOR_EXAMPLES = ("unet_256", "unet_128", "unet_64", "unet_32", "resnet_9blocks", "resnet_6blocks")
DISCRIMINATORS = ("basic", "n_layers", "pixel")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def _check_choice(value: Any, choices, key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: '{value}' is not one of {', '.join(choices)}.{did_you_mean(str(value), choices)}")


class ResnetBlock(nn.Module):
    """x + (pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm)(x)."""

    def __init__(self, dim: int, padding: str, norm: str, dropout: bool, bias: bool):
        super().__init__()
        layers = []
        for second in (False, True):
            pad = 0
            if padding == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            else:
                pad = 1
            layers += [nn.Conv2d(dim, dim, kernel_size=3, padding=pad, bias=bias), norm_layer(norm, dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, norm: str = "batch", dropout: bool = False,
                 n_blocks: int = 9, padding: str = "reflect"):
        super().__init__()
        bias = norm != "batch"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, kernel_size=7, padding=0, bias=bias),
                  norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):  # down-sampling
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c),
                       nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, padding, norm, dropout, bias) for _ in range(n_blocks)]
        for i in range(2):  # up-sampling
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.multiple = 4  # two stride-2 steps: sides that are multiples of 4 come back at their size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    """down (LeakyReLU, conv4x4/2, norm) -> inner block -> up (ReLU, convT4x4/2, norm), with the
    block's input concatenated to its output. As in the reference, whose LeakyReLU runs in place,
    the skip connection carries the LeakyReLU of the input."""

    def __init__(self, outer: int, inner: int, in_channels: Optional[int] = None, submodule: Optional[nn.Module] = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        bias = norm != "batch"
        down_conv = nn.Conv2d(in_channels or outer, inner, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            up_conv = nn.ConvTranspose2d(inner * 2, outer, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(inner, outer, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up_conv, norm_layer(norm, outer)]
        else:
            up_conv = nn.ConvTranspose2d(inner * 2, outer, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, norm_layer(norm, inner), submodule, nn.ReLU(True), up_conv,
                      norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        skip = self.model[0](x)  # the LeakyReLU, shared by the skip and the inner path
        y = skip
        for i, layer in enumerate(self.model):
            if i:
                y = layer(y)
        return torch.cat([skip, y], 1)


class UnetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_downs: int = 8, ngf: int = 64, norm: str = "batch",
                 dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ConfigError(f"a U-Net generator needs num_downs >= 5 (unet_32 or larger), got {num_downs}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(out_channels, ngf, in_channels=in_channels, submodule=block,
                                             outermost=True, norm=norm)
        self.multiple = 2 ** num_downs
        self.arch = f"unet_{self.multiple}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ConfigError(f"{self.arch} needs image sides that are multiples of {self.multiple}, got {h}x{w}: "
                              f"set the dataset's crop / resize transforms to a multiple of {self.multiple}, or pick "
                              f"a U-Net for smaller images (unet_{2 ** max(5, int(math.log2(max(1, min(h, w)))))})")
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, each seeing one patch (70x70 for 3 layers)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        layers = [nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN: one real/fake logit per pixel."""

    def __init__(self, in_channels: int, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, kernel_size=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """The reference's initialisation: convolution / linear weights by ``init_type`` (normal: N(0, gain)),
    their biases 0; BatchNorm scales N(1, gain), shifts 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def load_network_weights(net: nn.Module, path: str, key: str) -> None:
    """A network's own weights file (ours, or the reference's ``latest_net_G.pth``), matched by name."""
    sd = extract_state_dict(load_checkpoint(path))
    own = net.state_dict()
    # files of the reference's older versions keep InstanceNorm running statistics we do not track
    sd = {k: v for k, v in sd.items() if k in own or not k.endswith(("running_mean", "running_var",
                                                                       "num_batches_tracked"))}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or bad:
        raise ConfigError(f"{key}: {path} does not fit this network (missing {missing[:3]}, unexpected "
                          f"{unexpected[:3]}, shape mismatch {bad[:3]}); check arch, ngf/ndf, norm and the channels")
    net.load_state_dict(sd)


def parse_generator_arch(arch: Any, key: str) -> Dict[str, Any]:
    m = re.fullmatch(r"unet_(\d+)", str(arch))
    if m:
        size = int(m.group(1))
        if size < 32 or size & (size - 1):
            raise ConfigError(f"{key}: '{arch}': a U-Net is named by a power-of-two image size >= 32 (unet_256, "
                              f"unet_128, unet_64, unet_32)")
        return {"kind": "unet", "num_downs": int(math.log2(size))}
    m = re.fullmatch(r"resnet_(\d+)blocks", str(arch))
    if m:
        return {"kind": "resnet", "n_blocks": int(m.group(1))}
    raise ConfigError(f"{key}: generator arch '{arch}' is unknown.{did_you_mean(str(arch), GENERATOR_EXAMPLES)} "
                      f"Use unet_<size> (unet_256, unet_128 ...) or resnet_<n>blocks (resnet_9blocks, resnet_6blocks)")


def build_generator(in_channels: int, out_channels: int, arch: str = "unet_256", ngf: int = 64, norm: str = "batch",
                    dropout: bool = False, padding: str = "reflect", init_type: str = "normal",
                    init_gain: float = 0.02, weights: Optional[str] = None, key: str = "generator") -> nn.Module:
    """A generator from its config entry ``{arch, ngf, norm, dropout, padding, init_type, init_gain, weights}``."""
    spec = parse_generator_arch(arch, f"{key}.arch")
    _check_choice(norm, NORMS, f"{key}.norm")
    _check_choice(padding, PADDINGS, f"{key}.padding")
    _check_choice(init_type, INIT_TYPES, f"{key}.init_type")
    if not isinstance(ngf, int) or ngf < 1:
        raise ConfigError(f"{key}.ngf={ngf!r}: must be a positive integer (filters of the first layer)")
    if spec["kind"] == "unet":
        net: nn.Module = UnetGenerator(in_channels, out_channels, spec["num_downs"], ngf, norm, dropout)
    else:
        net = ResnetGenerator(in_channels, out_channels, ngf, norm, dropout, spec["n_blocks"], padding)
    init_weights(net, init_type, init_gain)
    if weights:
        load_network_weights(net, weights, f"{key}.weights")
    return net


def build_discriminator(in_channels: int, arch: str = "basic", ndf: int = 64, n_layers: int = 3,
                        norm: str = "batch", init_type: str = "normal", init_gain: float = 0.02,
                        weights: Optional[str] = None, key: str = "discriminator") -> nn.Module:
    """A discriminator from its config entry ``{arch, ndf, n_layers, norm, init_type, init_gain, weights}``."""
    _check_choice(arch, DISCRIMINATORS, f"{key}.arch")
    _check_choice(norm, NORMS, f"{key}.norm")
    _check_choice(init_type, INIT_TYPES, f"{key}.init_type")
    if not isinstance(ndf, int) or ndf < 1:
        raise ConfigError(f"{key}.ndf={ndf!r}: must be a positive integer (filters of the first layer)")
    if arch == "pixel":
        net: nn.Module = PixelDiscriminator(in_channels, ndf, norm)
    else:
        layers = 3 if arch == "basic" else n_layers
        if not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"{key}.n_layers={n_layers!r}: must be an integer >= 1")
        net = NLayerDiscriminator(in_channels, ndf, layers, norm)
    init_weights(net, init_type, init_gain)
    if weights:
        load_network_weights(net, weights, f"{key}.weights")
    return net


def network_entry(cfg: Optional[Dict[str, Any]], key: str, builder) -> Dict[str, Any]:
    """Check a generator / discriminator config entry against its builder's options."""
    import inspect
    cfg = dict(cfg or {})
    if "type" in cfg:
        raise ConfigError(f"{key}: a network entry names its architecture with 'arch', not 'type' "
                          f"(e.g. {{arch: unet_256, ngf: 64}})")
    accepted = [n for n in inspect.signature(builder).parameters if n not in ("in_channels", "out_channels", "key")]
    for name in cfg:
        if name not in accepted:
            raise ConfigError(f"{key}: unknown option '{name}'.{did_you_mean(name, accepted)} "
                              f"Accepted: {', '.join(accepted)}")
    return cfg
