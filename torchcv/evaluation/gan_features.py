"""Feature networks and distances for judging generated images without downloads.

FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) compare the feature statistics of generated
and real images. Their usual feature network is an ImageNet Inception-v3, whose weights cannot be
downloaded here, so the feature network is a local file:

- ``shapes_scorer``: a small CNN trained on the built-in data (``datasets/generate_shapes_gan.py``
  writes ``scorer.pth`` next to the images). It also classifies (domain, shape), which gives the
  accuracy of translated images (the pix2pix paper's "FCN-score" idea). Its 128-d pooled features
  feed FID/KID, so those values are comparable between runs on the built-in data, not with
  published Inception FIDs.
- ``inception_v3``: a torchvision Inception-v3 ``state_dict`` the user has (``weights: path``);
  2048-d pool features of the input resized to 299x299. Published FIDs use the TF-Inception
  weights ("pt_inception-2015-12-05"); torchvision's ImageNet weights give close but not equal
  values.

Distances are computed in float64 in torch: ``frechet_distance`` (tr sqrt(S1 S2) from the
eigenvalues of S1 S2, which are real and non-negative for covariance matrices) and
``kernel_inception_distance`` (unbiased MMD^2 with the cubic polynomial kernel).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ConfigError
from ..utils.weights import extract_state_dict, load_checkpoint

FEATURE_ARCHS = ("shapes_scorer", "inception_v3")


class ShapesScorer(nn.Module):
    """Three conv-BN-ReLU stages (16, 32, 64 channels, max-pooled), a 128-channel conv, global
    average pooling (the features) and a linear classifier. Inputs in [-1, 1]."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        layers = []
        c_in = in_channels
        for c in (16, 32, 64):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True), nn.MaxPool2d(2)]
            c_in = c
        layers += [nn.Conv2d(c_in, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(True),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FeatureNet:
    """A frozen network giving ``features(x)`` [N, D] (and ``logits(x)`` [N, K] when it classifies)
    for images in [-1, 1] of any size and 1 or 3 channels."""

    def __init__(self, arch: str, net: nn.Module, image_size: Optional[int], classes: Optional[Sequence[str]],
                 in_channels: int = 3):
        self.arch, self.net, self.image_size = arch, net.eval(), image_size
        self.classes = list(classes) if classes else None
        self.in_channels = in_channels
        for p in self.net.parameters():
            p.requires_grad_(False)

    def to(self, device: torch.device) -> "FeatureNet":
        self.net.to(device)
        return self

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[1] != self.in_channels:
            x = x.mean(1, keepdim=True) if self.in_channels == 1 else x[:, :1].expand(-1, self.in_channels, -1, -1)
        if self.image_size and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        return x

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        x = self._prepare(x)
        if isinstance(self.net, ShapesScorer):
            f = self.net.features(x)
            return f, self.net.classifier(f)
        return self.net(x), None


_CACHE: Dict[Tuple[str, str, float], FeatureNet] = {}


def load_feature_net(spec: Any, key: str = "evaluation.evaluator.feature_net") -> Optional[FeatureNet]:
    """``spec``: null (no features), a path to a file saved by ``save_scorer``, or
    ``{arch: shapes_scorer | inception_v3, weights: path}``. Loaded once per file and reused."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"weights": spec}
    if not isinstance(spec, dict) or not spec.get("weights"):
        raise ConfigError(f"{key}: give the path of a feature network file, or {{arch: inception_v3, weights: PATH}}, "
                          f"or null; got {spec!r}")
    unknown = set(spec) - {"arch", "weights"}
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)}; accepted: arch, weights")
    path = str(spec["weights"])
    if not os.path.isfile(path):
        raise ConfigError(f"{key}: feature network file not found: {path}. For the built-in data the run script "
                          f"writes it (datasets/generate_shapes_gan.py); for Inception give a local weights file, "
                          f"or set the evaluator's feature_net to null to skip FID/KID")
    cache_key = (str(spec.get("arch")), os.path.abspath(path), os.path.getmtime(path))
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    blob = load_checkpoint(path)
    arch = spec.get("arch") or blob.get("arch") or "inception_v3"
    if arch not in FEATURE_ARCHS:
        raise ConfigError(f"{key}.arch: '{arch}' must be one of {', '.join(FEATURE_ARCHS)}")
    if arch == "shapes_scorer":
        if "classes" not in blob or "model" not in blob:
            raise ConfigError(f"{key}: {path} is not a scorer file (no 'classes'/'model'); write one with "
                              f"datasets/generate_shapes_gan.py")
        net = ShapesScorer(len(blob["classes"]), int(blob.get("in_channels", 3)))
        net.load_state_dict(blob["model"])
        fnet = FeatureNet(arch, net, int(blob["image_size"]), blob["classes"], int(blob.get("in_channels", 3)))
    else:
        from torchvision.models import inception_v3
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        try:
            net.load_state_dict(extract_state_dict(blob))
        except RuntimeError as e:
            raise ConfigError(f"{key}: {path} is not a torchvision Inception-v3 state_dict: "
                              f"{str(e).splitlines()[0][:160]}") from None
        net.fc = nn.Identity()  # the 2048-d pool features
        fnet = FeatureNet(arch, net, 299, None, 3)
    _CACHE[cache_key] = fnet
    return fnet


def save_scorer(path: str, net: ShapesScorer, classes: Sequence[str], image_size: int, in_channels: int = 3,
                **extra: Any) -> None:
    torch.save({"arch": "shapes_scorer", "classes": list(classes), "image_size": image_size,
                "in_channels": in_channels, "model": net.state_dict(), **extra}, path)


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """FID between feature sets [N, D] and [M, D]: |mu_x - mu_y|^2 + tr(Sx + Sy - 2 sqrt(Sx Sy))."""
    x, y = x.double(), y.double()
    mu_x, mu_y = x.mean(0), y.mean(0)
    sx, sy = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(y.shape[1], -1)
    # eigenvalues of Sx Sy are those of the PSD matrix Sx^1/2 Sy Sx^1/2: real and >= 0 up to rounding
    eig = torch.linalg.eigvals(sx @ sy)
    tr_sqrt = eig.real.clamp(min=0).sqrt().sum()
    return float((mu_x - mu_y).pow(2).sum() + sx.trace() + sy.trace() - 2 * tr_sqrt)


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = x.shape[0], y.shape[0]
    return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
            - 2 * kxy.mean())


def kernel_inception_distance(x: torch.Tensor, y: torch.Tensor, subset_size: int = 1000, subsets: int = 10,
                              seed: int = 0) -> float:
    """KID: the unbiased MMD^2 with k(a, b) = (a.b / D + 1)^3, averaged over random subsets of
    ``subset_size`` (one subset of all samples when both sets are that small)."""
    x, y = x.double(), y.double()
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    if m == x.shape[0] == y.shape[0]:
        return float(_mmd2_unbiased(x, y))
    g = torch.Generator().manual_seed(seed)
    values = [_mmd2_unbiased(x[torch.randperm(x.shape[0], generator=g)[:m]], y[torch.randperm(y.shape[0], generator=g)[:m]])
              for _ in range(subsets)]
    return float(torch.stack(values).mean())
