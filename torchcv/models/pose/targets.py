"""Training targets of the heatmap pose models, built from keypoints on the output-stride grid.

Coordinates are continuous image coordinates (pixel i spans [i, i + 1], as for boxes and COCO
keypoints), so grid cell (r, c) of stride ``s`` covers [c*s, (c+1)*s] x [r*s, (r+1)*s] and stands
for its centre ((c + 0.5) s, (r + 0.5) s). A horizontal flip x -> W - x then maps cell c to cell
w - 1 - c exactly, which is what makes flipped targets (and flip-test averaging) exact.

- ``gaussian_heatmaps``: one Gaussian per labelled keypoint (visibility > 0), merged across people
  by their maximum (so two people never blur into one brighter peak), plus a background channel
  ``1 - max over keypoints`` (CPM, OpenPose).
- ``part_affinity_fields``: for each limb (a, b) of the skeleton, the unit vector from a to b on
  every cell whose centre lies on the segment (0 <= along <= length) within ``width`` pixels of its
  axis; where limbs of several people overlap, their vectors are averaged (OpenPose, eq. 9).
- ``center_map``: the Gaussian at the centre of a single-person crop (CPM's centre map).
- ``flip_heatmaps`` / ``flip_pafs``: the maps of a mirrored input mapped back to the original, with
  left/right channels swapped by the keypoint metadata (PAF x components change sign, and a limb
  whose mirror image runs the other way round changes sign entirely).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...registry import ConfigError


def grid_centres(grid: Tuple[int, int], stride: float, device=None) -> Tuple[Tensor, Tensor]:
    """x (1, w) and y (h, 1) image coordinates of the cell centres of an (h, w) grid."""
    h, w = grid
    xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) * stride
    ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) * stride
    return xs[None, :], ys[:, None]


def gaussian_heatmaps(keypoints: Tensor, grid: Tuple[int, int], stride: float, sigma: float,
                      background: bool = True) -> Tensor:
    """(K [+1], h, w) heatmaps of ``keypoints`` (N, K, 3: x, y, visibility); ``sigma`` in pixels."""
    kp = keypoints.reshape(-1, keypoints.shape[-2], 3).float()
    n, k = kp.shape[:2]
    h, w = grid
    xs, ys = grid_centres(grid, stride, kp.device)
    maps = torch.zeros(k, h, w, device=kp.device)
    if n:
        dx2 = (xs[None, None] - kp[..., 0, None, None]) ** 2           # (N, K, 1, w)
        dy2 = (ys[None, None] - kp[..., 1, None, None]) ** 2           # (N, K, h, 1)
        g = torch.exp(-(dx2 + dy2) / (2 * sigma ** 2))                  # (N, K, h, w)
        g = g * (kp[..., 2] > 0)[..., None, None]
        maps = g.amax(0)
    if background:
        maps = torch.cat([maps, (1 - maps.amax(0, keepdim=True)).clamp(min=0)], 0)
    return maps


def part_affinity_fields(keypoints: Tensor, skeleton: Sequence[Sequence[int]], grid: Tuple[int, int],
                         stride: float, width: float) -> Tensor:
    """(2L, h, w) fields (x, y per limb) of ``keypoints`` (N, K, 3) for the L limbs of ``skeleton``.
    A limb counts when both ends are labelled and apart; ``width``: the largest distance (pixels)
    of a cell centre from the limb's axis."""
    kp = keypoints.reshape(-1, keypoints.shape[-2], 3).float()
    h, w = grid
    limbs = torch.as_tensor([list(l) for l in skeleton], dtype=torch.long, device=kp.device).reshape(-1, 2)
    out = torch.zeros(len(limbs), 2, h, w, device=kp.device)
    if len(kp) == 0 or len(limbs) == 0:
        return out.reshape(-1, h, w)
    xs, ys = grid_centres(grid, stride, kp.device)
    a, b = kp[:, limbs[:, 0]], kp[:, limbs[:, 1]]                     # (N, L, 3)
    d = b[..., :2] - a[..., :2]
    length = d.norm(dim=-1)                                           # (N, L)
    valid = (a[..., 2] > 0) & (b[..., 2] > 0) & (length > 1e-6)
    u = d / length.clamp(min=1e-6)[..., None]                         # (N, L, 2) unit vectors
    px = xs[None, None] - a[..., 0, None, None]                       # (N, L, 1, w)
    py = ys[None, None] - a[..., 1, None, None]                       # (N, L, h, 1)
    along = u[..., 0, None, None] * px + u[..., 1, None, None] * py   # (N, L, h, w)
    across = (u[..., 0, None, None] * py - u[..., 1, None, None] * px).abs()
    eps = 1e-4  # a cell centre exactly on an end point or on the band's edge counts despite rounding
    on = (along >= -eps) & (along <= length[..., None, None] + eps) & (across <= width + eps) & valid[..., None, None]
    on = on.float()
    count = on.sum(0)                                                 # (L, h, w)
    field = (on[:, :, None] * u[..., None, None]).sum(0)              # (L, 2, h, w)
    out = field / count.clamp(min=1)[:, None]
    return out.reshape(-1, h, w)


def center_map(grid: Tuple[int, int], stride: float, center: Sequence[float], sigma: float) -> Tensor:
    """(1, h, w) Gaussian at ``center`` (x, y) in pixels."""
    xs, ys = grid_centres(grid, stride)
    return torch.exp(-((xs - float(center[0])) ** 2 + (ys - float(center[1])) ** 2) / (2 * sigma ** 2))[None]


def limb_flip_index(skeleton: Sequence[Sequence[int]], flip_index: Sequence[int]) -> List[Tuple[int, float]]:
    """For each limb (a, b): the limb that is its mirror image (flip(a), flip(b)) and +1, or the limb
    (flip(b), flip(a)) and -1 (the mirror runs the other way round, the field changes sign)."""
    limbs = [tuple(int(j) for j in l) for l in skeleton]
    where = {l: i for i, l in enumerate(limbs)}
    out = []
    for a, b in limbs:
        fa, fb = flip_index[a], flip_index[b]
        if (fa, fb) in where:
            out.append((where[(fa, fb)], 1.0))
        elif (fb, fa) in where:
            out.append((where[(fb, fa)], -1.0))
        else:
            raise ConfigError(f"limb ({a}, {b}) has no mirror image ({fa}, {fb}) in the skeleton: the skeleton is not "
                              f"symmetric under the flip pairs, so flip testing cannot map its fields back")
    return out


def flip_heatmaps(maps: Tensor, flip_index: Sequence[int]) -> Tensor:
    """Heatmaps (..., K [+1], h, w) of a mirrored input, back in the original's frame: mirror the
    columns and swap left/right channels (a background channel after the K keypoints stays)."""
    idx = list(flip_index) + list(range(len(flip_index), maps.shape[-3]))
    return maps.flip(-1)[..., idx, :, :]


def flip_pafs(pafs: Tensor, skeleton: Sequence[Sequence[int]], flip_index: Sequence[int],
              limb_map: Optional[List[Tuple[int, float]]] = None) -> Tensor:
    """PAFs (..., 2L, h, w) of a mirrored input, back in the original's frame."""
    limb_map = limb_map if limb_map is not None else limb_flip_index(skeleton, flip_index)
    mirrored = pafs.flip(-1)
    shape = mirrored.shape
    f = mirrored.reshape(*shape[:-3], len(limb_map), 2, *shape[-2:])
    src = [m for m, _ in limb_map]
    sign = torch.tensor([s for _, s in limb_map], dtype=f.dtype, device=f.device)
    out = f[..., src, :, :, :] * sign[:, None, None, None]
    out = torch.stack([-out[..., 0, :, :], out[..., 1, :, :]], dim=-3)  # x components change sign
    return out.reshape(shape)
