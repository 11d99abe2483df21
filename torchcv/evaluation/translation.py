"""Metrics, pictures and outputs of image-to-image translation (the ``gan`` task).

``process(outputs, targets, metas)`` gets the model's translations by name (``fake_B``; CycleGAN
adds ``rec_A``, ``fake_A``, ``rec_B``) with the inputs ``real_A`` / ``real_B``, all in [-1, 1].
Metrics, on images mapped to [0, 1]:

- where B is the true translation of A (paired data; unpaired data with ``ground_truth_pairs``):
  ``L1`` (mean absolute error), ``PSNR`` (dB, mean over images), ``SSIM`` (Gaussian 11x11 window,
  sigma 1.5, mean over images and channels); with ``baseline: true`` also ``mean_image_L1`` /
  ``mean_image_PSNR``: the same for predicting the mean target image of the evaluated set (a
  constant predictor that knows the set's average);
- CycleGAN: ``cycle_L1`` (mean of ``cycle_L1_A`` = L1(G_B(G_A(A)), A) and ``cycle_L1_B``);
- with a feature network (``feature_net``, see gan_features.py): ``FID`` and ``KID`` between the
  features of the translations and of the real images of the target domain; with a labels file
  (``labels``: lines ``<path relative to the data root> <class>``) and a classifying feature network
  (classes ``<domain>_<class>``): ``acc``, the share of translations the network assigns to the
  target domain and the source image's class.
Metrics of the B -> A direction (CycleGAN) carry the suffix ``_BtoA``.

``visualize(out_dir)`` draws the first ``num_vis`` samples (input | output | target, CycleGAN: both
directions with their reconstructions) into ``translations.png``; in test mode ``write(out_dir)``
saves every translation as a PNG (``fake_B/<name>.png``, ``fake_A/...``) and the same grid.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..registry import EVALUATORS, ConfigError
from ..utils import dist
from .base import Evaluator
from .gan_features import frechet_distance, kernel_inception_distance, load_feature_net


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (clamped), float32."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """One image [C, H, W] in [-1, 1] as uint8 RGB [H, W, 3]."""
    u = (to_unit(x) * 255).round().byte().cpu()
    if u.shape[0] == 1:
        u = u.expand(3, -1, -1)
    return np.ascontiguousarray(u.permute(1, 2, 0).numpy())


def per_image_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(1)


def per_image_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dB for images in [0, 1]; an exact match is capped at 100 dB."""
    mse = (a - b).pow(2).flatten(1).mean(1).double()
    return (10 * torch.log10(1.0 / mse.clamp(min=1e-10))).float()


def _gaussian_window(size: int, sigma: float, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def per_image_ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM (Wang et al. 2004) of images in [0, 1]: local statistics under a Gaussian window over the
    positions where the window fits (no padding), averaged over positions and channels."""
    c = a.shape[1]
    size = min(window, a.shape[-2], a.shape[-1])
    size -= 1 - size % 2  # odd
    # float64: E[x^2] - E[x]^2 in float32 leaves variances of rounding size next to C2 = 9e-4
    w = _gaussian_window(size, sigma, a.device).double().expand(c, 1, size, size)
    a, b = a.double(), b.double()

    def blur(x):
        return F.conv2d(x, w, groups=c)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).float()


def read_labels(path: str) -> Dict[str, str]:
    if not os.path.isfile(path):
        raise ConfigError(f"evaluation.evaluator.labels: file not found: {path}")
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ConfigError(f"{path}:{n}: expected '<image path relative to the data root> <class>', got "
                                  f"{line.strip()!r}")
            out[os.path.normpath(parts[0])] = parts[1]
    return out


# which translation each direction judges: (name of the fake, its source, its target, its reconstruction)
DIRECTIONS = (("", "fake_B", "real_A", "real_B", "rec_A"), ("_BtoA", "fake_A", "real_B", "real_A", "rec_B"))


@EVALUATORS.register()
class TranslationEvaluator(Evaluator):
    """Args:
        dataset: a translation dataset (``paired_ground_truth``, ``domains``, ``root``).
        feature_net: null, a scorer file path or ``{arch, weights}`` (FID / KID / acc).
        labels: class of each image (for ``acc``), lines ``<relative path> <class>``.
        baseline: also score the mean target image (paired data).
        num_vis: samples drawn by ``visualize``.
        kid_subset_size / kid_subsets: KID on random subsets when the sets are larger.
    """

    def __init__(self, dataset: Any, feature_net: Any = None, labels: Optional[str] = None, baseline: bool = True,
                 num_vis: int = 8, kid_subset_size: int = 1000, kid_subsets: int = 10):
        super().__init__(dataset)
        self.paired = bool(getattr(dataset, "paired_ground_truth", False))
        self.domains = tuple(getattr(dataset, "domains", ("A", "B")))
        self.root = getattr(dataset, "root", None)
        self.feature_net = load_feature_net(feature_net)
        self.labels = read_labels(labels) if labels else None
        if self.labels is not None and (self.feature_net is None or self.feature_net.classes is None):
            raise ConfigError("evaluation.evaluator.labels needs a classifying feature_net (a scorer file with "
                              "classes) to score the translations")
        self.baseline = baseline
        self.num_vis = num_vis
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets
        self.values: Dict[str, List[float]] = defaultdict(list)   # per-image scores by metric
        self.feats: Dict[str, List[torch.Tensor]] = defaultdict(list)  # features by set
        self.target_sum: Optional[torch.Tensor] = None             # for the mean-image baseline
        self.targets_u8: List[torch.Tensor] = []
        self.vis: List[Dict[str, np.ndarray]] = []
        self.outputs: List[tuple] = []                             # (folder, name, PNG bytes) when writing
        self.last: Dict[str, float] = {}

    # ---- per batch ------------------------------------------------------------------------------
    def _expected_class(self, meta: dict, key: str, domain: str) -> Optional[int]:
        path = meta.get(key)
        if path is None or self.root is None:
            return None
        cls = self.labels.get(os.path.normpath(os.path.relpath(path, self.root)))
        if cls is None:
            raise ConfigError(f"evaluation.evaluator.labels has no class for {path}")
        name = f"{domain}_{cls}"
        if name not in self.feature_net.classes:
            raise ConfigError(f"the feature network has no class '{name}' (classes: {self.feature_net.classes})")
        return self.feature_net.classes.index(name)

    def process(self, outputs: Dict[str, torch.Tensor], targets: Any, metas: List[dict]) -> None:
        if self.feature_net is not None:
            self.feature_net.to(outputs["fake_B"].device)
        for suffix, fake_key, src_key, tgt_key, rec_key in DIRECTIONS:
            if fake_key not in outputs:
                continue
            fake, real_src, real_tgt = outputs[fake_key], outputs[src_key], outputs[tgt_key]
            f01, t01 = to_unit(fake), to_unit(real_tgt)
            if self.paired:
                self.values["L1" + suffix] += per_image_l1(f01, t01).tolist()
                self.values["PSNR" + suffix] += per_image_psnr(f01, t01).tolist()
                self.values["SSIM" + suffix] += per_image_ssim(f01, t01).tolist()
                if self.baseline and not suffix:
                    self.targets_u8 += list((t01 * 255).round().byte().cpu())
            if rec_key in outputs:
                self.values["cycle_L1" + ("_A" if not suffix else "_B")] += \
                    per_image_l1(to_unit(outputs[rec_key]), to_unit(real_src)).tolist()
            if self.feature_net is not None:
                f_fake, logits = self.feature_net.features_and_logits(fake)
                f_real, _ = self.feature_net.features_and_logits(real_tgt)
                self.feats["fake" + suffix].append(f_fake.double().cpu())
                self.feats["real" + suffix].append(f_real.double().cpu())
                if self.labels is not None:
                    path_key = "path" if not suffix else "path_B"
                    domain = self.domains[1] if not suffix else self.domains[0]
                    expected = [self._expected_class(m, path_key, domain) for m in metas]
                    pred = logits.argmax(1).tolist()
                    self.values["acc" + suffix] += [float(p == e) for p, e in zip(pred, expected)]
        self._keep_pictures(outputs, metas)

    def _keep_pictures(self, outputs: Dict[str, torch.Tensor], metas: List[dict]) -> None:
        names = [k for k in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B") if k in outputs]
        if "rec_A" not in outputs:  # pix2pix: input | output | target
            names = ["real_A", "fake_B", "real_B"]
        for i in range(len(metas)):
            if len(self.vis) < self.num_vis:
                self.vis.append({k: to_uint8_hwc(outputs[k][i]) for k in names})
            if self.writing:
                stem = os.path.splitext(os.path.basename(metas[i]["path"]))[0]
                for key, folder_of in (("fake_B", "path"), ("fake_A", "path_B")):
                    if key in outputs:
                        name = os.path.splitext(os.path.basename(metas[i][folder_of]))[0] if key == "fake_A" else stem
                        ok, png = cv2.imencode(".png", to_uint8_hwc(outputs[key][i])[:, :, ::-1])
                        self.outputs.append((key, name, png.tobytes()))

    # ---- reduction ------------------------------------------------------------------------------
    def collect(self) -> None:
        if not dist.is_dist():
            return
        gathered = dist.all_gather_object((dict(self.values), {k: torch.cat(v) for k, v in self.feats.items()},
                                           self.targets_u8, self.outputs))
        self.values, self.feats, self.targets_u8, self.outputs = defaultdict(list), defaultdict(list), [], []
        for values, feats, targets, outputs in gathered:
            for k, v in values.items():
                self.values[k] += v
            for k, v in feats.items():
                self.feats[k].append(v)
            self.targets_u8 += targets
            self.outputs += outputs

    def compute_metrics(self) -> Dict[str, float]:
        out: Dict[str, float] = {}
        for k, v in self.values.items():
            if k.startswith("cycle_L1"):
                continue
            out[k] = float(np.mean(v)) if v else math.nan
        if "cycle_L1_A" in self.values:
            a, b = self.values["cycle_L1_A"], self.values.get("cycle_L1_B", [])
            out["cycle_L1"] = float(np.mean(a + b))
            out["cycle_L1_A"] = float(np.mean(a))
            if b:
                out["cycle_L1_B"] = float(np.mean(b))
        if self.targets_u8:
            targets = torch.stack(self.targets_u8).float() / 255
            mean_image = targets.mean(0, keepdim=True).expand_as(targets)
            out["mean_image_L1"] = float(per_image_l1(mean_image, targets).mean())
            out["mean_image_PSNR"] = float(per_image_psnr(mean_image, targets).mean())
        for suffix, *_ in DIRECTIONS:
            if self.feats.get("fake" + suffix):
                fake, real = torch.cat(self.feats["fake" + suffix]), torch.cat(self.feats["real" + suffix])
                out["FID" + suffix] = frechet_distance(fake, real)
                if min(len(fake), len(real)) >= 2:
                    out["KID" + suffix] = kernel_inception_distance(fake, real, self.kid_subset_size, self.kid_subsets)
        self.last = out
        return out

    def report(self) -> str:
        m = self.last
        if "PSNR" in m and "mean_image_PSNR" in m:
            return (f"translation A->B: L1 {m['L1']:.4f} / PSNR {m['PSNR']:.2f} dB; predicting the mean target "
                    f"image: L1 {m['mean_image_L1']:.4f} / PSNR {m['mean_image_PSNR']:.2f} dB")
        return ""

    # ---- pictures and outputs -------------------------------------------------------------------
    def grid(self) -> Optional[np.ndarray]:
        """Rows of samples; columns input | output | target (pix2pix) or A | G_A(A) | G_B(G_A(A)) |
        B | G_B(B) | G_A(G_B(B)) (CycleGAN), tiles enlarged to at least 128 px, titles on top."""
        if not self.vis:
            return None
        cycle = "rec_A" in self.vis[0]
        titles = {"real_A": "input A", "fake_B": "output G(A)", "real_B": "target B"} if not cycle else \
            {"real_A": "A", "fake_B": "G_A(A)", "rec_A": "G_B(G_A(A))", "real_B": "B", "fake_A": "G_B(B)",
             "rec_B": "G_A(G_B(B))"}
        keys = [k for k in titles if k in self.vis[0]]
        h, w = self.vis[0][keys[0]].shape[:2]
        k = max(1, -(-128 // max(1, min(h, w))))
        th, tw = h * k, w * k
        head = 18
        canvas = np.full((head + len(self.vis) * (th + 2), len(keys) * (tw + 2), 3), 255, np.uint8)
        for c, key in enumerate(keys):
            cv2.putText(canvas, titles[key], (c * (tw + 2) + 3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
            for r, sample in enumerate(self.vis):
                tile = cv2.resize(sample[key], (tw, th), interpolation=cv2.INTER_NEAREST)
                y, x = head + r * (th + 2), c * (tw + 2)
                canvas[y:y + th, x:x + tw] = tile
        return canvas

    def visualize(self, out_dir: str) -> None:
        picture = self.grid()
        if picture is not None:
            os.makedirs(out_dir, exist_ok=True)
            cv2.imwrite(os.path.join(out_dir, "translations.png"), picture[:, :, ::-1])

    def write(self, out_dir: str) -> None:
        """Every translation as a PNG: ``<out_dir>/fake_B/<name of A>.png`` (and ``fake_A/<name of B>.png``)."""
        for folder, name, data in self.outputs:
            os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
            with open(os.path.join(out_dir, folder, name + ".png"), "wb") as f:
                f.write(data)
        self.visualize(out_dir)

