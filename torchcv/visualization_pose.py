"""Pictures of pose models: skeletons of several people, heatmaps and part affinity fields over the
image, and a montage of several pictures. Images are uint8 RGB [H, W, 3] (as in visualization.py).

A PAF picture colours each cell by the direction of its strongest limb vector (hue) and its length
(brightness), so each limb shows as a band of one colour pointing from its first to its second joint.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from .visualization import PALETTE, _numpy, draw_keypoints


def draw_people(image: np.ndarray, keypoints, skeleton: Optional[Sequence[Sequence[int]]] = None, scores=None,
                score_thr: float = 0.0) -> np.ndarray:
    """Every person's keypoints (P, K, 3: x, y, visibility/found) and limbs, one colour per person."""
    img = np.ascontiguousarray(image).copy()
    kps = _numpy(keypoints).astype(np.float32).reshape(-1, *(_numpy(keypoints).shape[-2:]))
    scores = None if scores is None else _numpy(scores).reshape(-1)
    thick = max(1, round(max(img.shape[:2]) / 300))
    for i, kp in enumerate(kps):
        if scores is not None and scores[i] < score_thr:
            continue
        draw_keypoints(img, kp, skeleton, PALETTE[i % len(PALETTE)], thick)
    return img


def heatmap_colour(heatmaps) -> np.ndarray:
    """(K, h, w) keypoint heatmaps -> (h, w, 3) uint8: the maximum over keypoints, JET colours."""
    m = _numpy(torch.as_tensor(heatmaps).float().amax(0)) if len(heatmaps) else np.zeros((1, 1), np.float32)
    u8 = (np.clip(m, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_JET)[:, :, ::-1]


def paf_colour(pafs) -> np.ndarray:
    """(2L, h, w) part affinity fields -> (h, w, 3) uint8: hue = direction of the longest limb vector
    at each cell, brightness = its length (1 = full)."""
    p = torch.as_tensor(pafs).float()
    h, w = p.shape[-2:]
    if p.shape[0] == 0:
        return np.zeros((h, w, 3), np.uint8)
    vec = p.reshape(-1, 2, h, w)
    length = vec.norm(dim=1)
    best = length.argmax(0)
    v = vec.gather(0, best[None, None].expand(1, 2, h, w))[0]
    angle = (torch.atan2(v[1], v[0]) % (2 * np.pi)) / (2 * np.pi) * 180
    hsv = np.stack([_numpy(angle), np.full((h, w), 255.0), _numpy(length.amax(0).clamp(0, 1) * 255)], -1)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def overlay(image: np.ndarray, colours: np.ndarray, alpha: float = 0.6, region=None,
            by_brightness: bool = False) -> np.ndarray:
    """``colours`` (a map of the model's grid) resized over ``image``; ``region`` (h, w): the part of the
    grid's span that covers the image (the rest is padding); ``by_brightness``: blend each pixel in
    proportion to the colour's brightness (PAFs: the image stays visible where the field is empty)."""
    img = np.ascontiguousarray(image).copy()
    c = colours
    if region is not None:
        c = c[:region[0], :region[1]]
    c = cv2.resize(c, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    a = alpha * (c.max(-1, keepdims=True) / 255.0 if by_brightness else 1.0)
    return (img * (1 - a) + c * a).astype(np.uint8)


def montage(pictures: Sequence[np.ndarray], columns: int = 4, side: int = 256) -> np.ndarray:
    """Pictures scaled to ``side`` px high, in rows of ``columns`` on a dark background."""
    if not pictures:
        return np.zeros((side, side, 3), np.uint8)
    tiles = []
    for p in pictures:
        s = side / p.shape[0]
        tiles.append(cv2.resize(p, (max(1, int(round(p.shape[1] * s))), side), interpolation=cv2.INTER_AREA))
    width = max(t.shape[1] for t in tiles)
    rows = []
    for i in range(0, len(tiles), columns):
        row = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=32) for t in tiles[i:i + columns]]
        row += [np.full((side, width, 3), 32, np.uint8)] * (columns - len(row)) if len(tiles) > columns else []
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)
