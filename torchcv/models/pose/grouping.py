"""Bottom-up grouping (OpenPose inference): heatmaps + part affinity fields -> people.

1. ``find_peaks``: per keypoint map, local maxima above ``peak_threshold`` (max-pool NMS on the grid,
   plateaus kept once), refined to sub-cell precision by a quadratic fit of the log-heatmap around
   the maximum (exact for a Gaussian, which is what the targets are).
2. ``score_limbs``: for every limb and every pair of candidate end points, sample the limb's PAF at
   ``samples`` points along the segment, score = mean of the field's projection on the segment's
   direction plus a penalty for limbs longer than half the image height; a pair counts when at least
   ``min_aligned`` of the samples project above ``paf_threshold`` and the score is positive.
3. ``match_limbs``: greedy bipartite matching per limb, best score first, each end point used once.
4. ``assemble``: limbs join people that share an end point; two partial people joined by a limb
   merge when they have no keypoint type in common. People with fewer than ``min_parts`` keypoints
   or a mean part score below ``min_score`` are dropped.

Works with any skeleton, also one with cycles (COCO's joins the face and the torso in loops): a
limb whose ends are already in the same person only adds its score.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def find_peaks(heatmaps: Tensor, stride: float, threshold: float = 0.1) -> List[Tensor]:
    """Per channel (K, h, w) a (P, 3) tensor of peaks: x, y (image pixels), score; best first."""
    maps = heatmaps.float()
    pooled = F.max_pool2d(maps[None], 3, stride=1, padding=1)[0]
    is_peak = (maps >= pooled) & (maps > threshold)
    logs = maps.clamp(min=1e-10).log()
    h, w = maps.shape[-2:]
    out = []
    for k in range(maps.shape[0]):
        ys, xs = torch.nonzero(is_peak[k], as_tuple=True)
        scores = maps[k, ys, xs]
        order = torch.argsort(scores, descending=True, stable=True)
        kept: List[Tuple[int, int]] = []
        rows = []
        for i in order.tolist():
            y, x = int(ys[i]), int(xs[i])
            if any(abs(y - ky) <= 1 and abs(x - kx) <= 1 for ky, kx in kept):
                continue  # the other half of a plateau
            kept.append((y, x))
            dx, dy = subcell_offset(logs[k, y, :], x), subcell_offset(logs[k, :, x], y)
            rows.append([(x + 0.5 + dx) * stride, (y + 0.5 + dy) * stride, float(scores[i])])
        out.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 3))
    return out


def subcell_offset(line: Tensor, i: int) -> float:
    """Offset (cells, within +-0.5) of the maximum near ``line[i]``: the vertex of the parabola through
    three neighbouring samples of the log-heatmap (the window shifts inwards at the borders), which is
    exact for a Gaussian."""
    n = line.shape[0]
    if n < 3:
        return 0.0
    start = min(max(i - 1, 0), n - 3)
    l0, l1, l2 = (float(v) for v in line[start:start + 3])
    curvature = l0 - 2 * l1 + l2
    if curvature >= -1e-6:
        return 0.0
    vertex = start + 1 + 0.5 * (l0 - l2) / curvature
    return max(-0.5, min(0.5, vertex - i))


def sample_field(pafs: Tensor, points: Tensor, stride: float) -> Tensor:
    """Bilinear samples of ``pafs`` (C, h, w) at image points (..., 2) -> (..., C)."""
    h, w = pafs.shape[-2:]
    gx = points[..., 0] / stride - 0.5
    gy = points[..., 1] / stride - 0.5
    grid = torch.stack([(gx + 0.5) / w * 2 - 1, (gy + 0.5) / h * 2 - 1], -1)  # align_corners=False
    flat = grid.reshape(1, -1, 1, 2)
    vals = F.grid_sample(pafs[None].float(), flat, mode="bilinear", padding_mode="zeros", align_corners=False)
    return vals[0, :, :, 0].t().reshape(*points.shape[:-1], pafs.shape[0])


def score_limbs(paf: Tensor, starts: Tensor, ends: Tensor, stride: float, image_height: float,
                samples: int = 10, paf_threshold: float = 0.05, min_aligned: float = 0.8) -> Tensor:
    """(A, B) scores of connecting each start peak to each end peak through one limb's field
    ``paf`` (2, h, w); -inf where the pair does not qualify."""
    na, nb = len(starts), len(ends)
    if na == 0 or nb == 0:
        return torch.full((na, nb), float("-inf"))
    a = starts[:, None, :2]
    b = ends[None, :, :2]
    d = b - a                                                          # (A, B, 2)
    norm = d.norm(dim=-1)
    u = d / norm.clamp(min=1e-6)[..., None]
    t = torch.linspace(0, 1, samples)
    pts = a[:, :, None] + t[None, None, :, None] * d[:, :, None]      # (A, B, S, 2)
    vec = sample_field(paf, pts, stride)                               # (A, B, S, 2)
    dots = (vec * u[:, :, None]).sum(-1)
    prior = (0.5 * image_height / norm.clamp(min=1e-6) - 1).clamp(max=0)
    score = dots.mean(-1) + prior
    aligned = (dots > paf_threshold).float().mean(-1)
    ok = (aligned >= min_aligned) & (score > 0) & (norm > 1e-6)
    return torch.where(ok, score, torch.full_like(score, float("-inf")))


def match_limbs(scores: Tensor) -> List[Tuple[int, int, float]]:
    """Greedy bipartite matching: best pair first, every start and end used at most once."""
    if scores.numel() == 0:
        return []
    flat = scores.flatten()
    order = torch.argsort(flat, descending=True, stable=True)
    nb = scores.shape[1]
    used_a, used_b, out = set(), set(), []
    for idx in order.tolist():
        s = float(flat[idx])
        if s == float("-inf"):
            break
        i, j = divmod(idx, nb)
        if i in used_a or j in used_b:
            continue
        used_a.add(i), used_b.add(j)
        out.append((i, j, s))
        if len(used_a) == scores.shape[0] or len(used_b) == nb:
            break
    return out


def assemble(connections: Dict[int, List[Tuple[int, int, float]]], skeleton: Sequence[Sequence[int]],
             num_keypoints: int) -> List[Dict]:
    """People from per-limb connections (limb index -> [(start peak, end peak, score)]): each a dict
    ``parts`` (K peak ids, -1 where missing) and ``limb_score`` (sum of its limb scores)."""
    people: List[Dict] = []
    for l, (ka, kb) in enumerate(skeleton):
        for i, j, s in connections.get(l, []):
            found = [p for p in people if p["parts"][ka] == i or p["parts"][kb] == j]
            if len(found) == 1:
                p = found[0]
                if p["parts"][ka] == i and p["parts"][kb] in (-1, j):
                    p["parts"][kb] = j
                    p["limb_score"] += s
                elif p["parts"][kb] == j and p["parts"][ka] == -1:
                    p["parts"][ka] = i
                    p["limb_score"] += s
                # else: the person already has another peak of that type; the limb conflicts, skip it
            elif len(found) == 2:
                p, q = found
                if all(x == -1 or y == -1 for x, y in zip(p["parts"], q["parts"])):
                    p["parts"] = [x if x != -1 else y for x, y in zip(p["parts"], q["parts"])]
                    p["limb_score"] += q["limb_score"] + s
                    people.remove(q)
            elif not found:
                parts = [-1] * num_keypoints
                parts[ka], parts[kb] = i, j
                people.append({"parts": parts, "limb_score": s})
    return people


def group_people(heatmaps: Tensor, pafs: Tensor, skeleton: Sequence[Sequence[int]], stride: float,
                 image_height: float, peak_threshold: float = 0.1, paf_threshold: float = 0.05,
                 samples: int = 10, min_aligned: float = 0.8, min_parts: int = 3,
                 min_score: float = 0.2) -> Dict[str, Tensor]:
    """People in one image from its keypoint heatmaps (K, h, w; no background) and PAFs (2L, h, w):
    ``keypoints`` (P, K, 3: x, y, 1 where found / 0), ``keypoints_scores`` (P, K: peak values, 0
    where missing), ``scores`` (P: the sum of the peak values over K, so complete and confident people
    rank first), ``boxes`` (P, 4: the extent of the found keypoints), ``labels`` (P: 1), best first."""
    k = heatmaps.shape[0]
    peaks = find_peaks(heatmaps, stride, peak_threshold)
    connections = {}
    for l, (a, b) in enumerate(skeleton):
        scores = score_limbs(pafs[2 * l:2 * l + 2], peaks[a], peaks[b], stride, image_height, samples,
                             paf_threshold, min_aligned)
        connections[l] = match_limbs(scores)
    people = assemble(connections, skeleton, k)
    # a keypoint type that no limb reaches (or a skeleton without limbs): lone peaks are no people
    rows_kp, rows_sc = [], []
    for p in people:
        kp = torch.zeros(k, 3)
        sc = torch.zeros(k)
        for j, pid in enumerate(p["parts"]):
            if pid >= 0:
                kp[j] = torch.tensor([float(peaks[j][pid, 0]), float(peaks[j][pid, 1]), 1.0])
                sc[j] = peaks[j][pid, 2]
        found = int((kp[:, 2] > 0).sum())
        if found < min_parts or float(sc.sum()) / found < min_score:
            continue
        rows_kp.append(kp)
        rows_sc.append(sc)
    if not rows_kp:
        return {"keypoints": torch.zeros(0, k, 3), "keypoints_scores": torch.zeros(0, k), "scores": torch.zeros(0),
                "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    keypoints, kp_scores = torch.stack(rows_kp), torch.stack(rows_sc)
    scores = kp_scores.sum(1) / k
    order = torch.argsort(scores, descending=True, stable=True)
    keypoints, kp_scores, scores = keypoints[order], kp_scores[order], scores[order]
    return {"keypoints": keypoints, "keypoints_scores": kp_scores, "scores": scores,
            "boxes": keypoint_boxes(keypoints), "labels": torch.ones(len(scores), dtype=torch.int64)}


def keypoint_boxes(keypoints: Tensor) -> Tensor:
    """(P, 4) xyxy extent of each person's found keypoints (visibility > 0)."""
    vis = keypoints[..., 2] > 0
    big = torch.tensor(float("inf"))
    x, y = keypoints[..., 0], keypoints[..., 1]
    x0 = torch.where(vis, x, big).amin(1)
    y0 = torch.where(vis, y, big).amin(1)
    x1 = torch.where(vis, x, -big).amax(1)
    y1 = torch.where(vis, y, -big).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1)
    return torch.where(torch.isfinite(boxes), boxes, torch.zeros_like(boxes))
