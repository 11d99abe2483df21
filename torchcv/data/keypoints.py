"""Keypoint metadata (names, skeleton, left/right flip pairs, OKS sigmas) and the horizontal flip
that swaps left and right keypoints by that metadata.

torchvision's references hard-code COCO's flip order, which silently breaks custom skeletons. Here
a dataset describes its keypoints (COCO's 17 by default for COCO files); ``bind_flip_pairs``
replaces every ``RandomHorizontalFlip`` of its transform pipeline by ``KeypointHorizontalFlip``,
which flips keypoints like boxes (x -> W - x) and then swaps each left/right pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..registry import ConfigError

COCO_KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                       "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                       "right_knee", "left_ankle", "right_ankle"]
# COCO's person skeleton (0-based joint indices)
COCO_SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                 (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
# per-keypoint OKS sigmas of the COCO keypoint evaluation
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
               0.087, 0.089, 0.089]


def flip_pairs_from_names(names: Sequence[str]) -> List[Tuple[int, int]]:
    """Left/right pairs found by name (``left_x``/``right_x``, ``l_x``/``r_x``, ``x_left``/``x_right``)."""
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, n in enumerate(names):
        for left, right in (("left_", "right_"), ("l_", "r_"), ("_left", "_right"), ("left", "right")):
            other = n.replace(left, right, 1) if left in n else None
            if other and other != n and other in index:
                pairs.append((i, index[other]))
                break
    return pairs


@dataclass
class KeypointMeta:
    names: List[str]
    skeleton: List[Tuple[int, int]] = field(default_factory=list)
    flip_pairs: List[Tuple[int, int]] = field(default_factory=list)
    sigmas: List[float] = field(default_factory=list)

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_index(self) -> List[int]:
        """The permutation that maps each keypoint to its mirror image (identity for unpaired ones)."""
        idx = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    @classmethod
    def create(cls, names: Sequence[str], skeleton: Optional[Sequence[Sequence[int]]] = None,
               flip_pairs: Optional[Sequence[Sequence[int]]] = None, sigmas: Optional[Sequence[float]] = None,
               where: str = "keypoints") -> "KeypointMeta":
        """Validated metadata; skeleton and flip pairs are 0-based joint indices. Defaults: flip pairs
        found by name, COCO's sigmas when the names are COCO's 17 (otherwise sigmas are required for
        OKS evaluation and left empty)."""
        names = [str(n) for n in names]
        k = len(names)
        if k == 0:
            raise ConfigError(f"{where}: no keypoint names")
        skeleton = [tuple(int(j) for j in limb) for limb in (skeleton or [])]
        for limb in skeleton:
            if len(limb) != 2 or not all(0 <= j < k for j in limb):
                raise ConfigError(f"{where}: skeleton limb {list(limb)} references a joint outside 0..{k - 1} "
                                  f"({k} keypoints: {', '.join(names[:6])} ...)")
        pairs = [tuple(int(j) for j in p) for p in flip_pairs] if flip_pairs is not None else flip_pairs_from_names(names)
        seen = set()
        for p in pairs:
            if len(p) != 2 or not all(0 <= j < k for j in p) or p[0] == p[1]:
                raise ConfigError(f"{where}: flip pair {list(p)} must name two different joints in 0..{k - 1}")
            if seen & set(p):
                raise ConfigError(f"{where}: joint(s) {sorted(seen & set(p))} appear in two flip pairs")
            seen |= set(p)
        if sigmas is None:
            sigmas = COCO_SIGMAS if names == COCO_KEYPOINT_NAMES else []
        sigmas = [float(s) for s in sigmas]
        if sigmas and len(sigmas) != k:
            raise ConfigError(f"{where}: {len(sigmas)} OKS sigmas for {k} keypoints; give one per keypoint")
        if any(s <= 0 for s in sigmas):
            raise ConfigError(f"{where}: OKS sigmas must be positive")
        return cls(names, skeleton, pairs, sigmas)


class KeypointVisibility(tv_tensors.TVTensor):
    """(N, K) visibility that travels with ``KeyPoints`` through v2 transforms: geometric transforms
    pass it through unchanged, ``KeypointHorizontalFlip`` permutes it with the keypoints."""


class KeypointHorizontalFlip(v2.RandomHorizontalFlip):
    """``RandomHorizontalFlip`` that mirrors keypoints like boxes (x -> W - x) and swaps left/right
    keypoints (and their visibility) by ``flip_index`` (a permutation of the keypoint axis)."""

    def __init__(self, p: float = 0.5, flip_index: Optional[Sequence[int]] = None):
        super().__init__(p=p)
        self.flip_index = list(flip_index) if flip_index is not None else None

    def transform(self, inpt: Any, params: dict) -> Any:
        if isinstance(inpt, KeypointVisibility):
            return inpt if self.flip_index is None else tv_tensors.wrap(inpt[..., self.flip_index], like=inpt)
        out = super().transform(inpt, params)
        if isinstance(inpt, tv_tensors.KeyPoints):
            # torchvision mirrors keypoints as pixel indices (W - 1 - x); boxes as W - x: keep them together
            shifted = out.as_subclass(torch.Tensor).clone()
            shifted[..., 0] += 1
            if self.flip_index is not None and shifted.dim() >= 2:
                shifted = shifted[..., self.flip_index, :]
            out = tv_tensors.wrap(shifted, like=out)
        return out


def bind_flip_pairs(transforms: Any, meta: KeypointMeta) -> Any:
    """Swap every ``RandomHorizontalFlip`` in a (composed) pipeline for ``KeypointHorizontalFlip``."""
    items = getattr(transforms, "transforms", None)
    if isinstance(transforms, v2.RandomHorizontalFlip) and not isinstance(transforms, KeypointHorizontalFlip):
        return KeypointHorizontalFlip(transforms.p, meta.flip_index())
    if isinstance(items, list):
        transforms.transforms = [bind_flip_pairs(t, meta) for t in items]
    return transforms
