"""Pictures of samples and predictions for every task: boxes, masks and labels (detection), a
colour overlay (segmentation), top-k labels (classification). Images are uint8 RGB [H, W, 3]."""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def find_normalize(transforms: Any) -> Optional[v2.Normalize]:
    """The Normalize step of a (composed) transform pipeline, if any."""
    if isinstance(transforms, v2.Normalize):
        return transforms
    for t in getattr(transforms, "transforms", []) or []:
        found = find_normalize(t)
        if found is not None:
            return found
    return None


def to_display(image: Any, transforms: Any = None) -> np.ndarray:
    """A model input (CHW float, maybe normalised) or an image (CHW/HWC uint8) as HWC uint8 RGB."""
    if torch.is_tensor(image) and image.dim() == 3 and image.shape[0] in (1, 3):
        x = image.detach().float().cpu()
        if image.dtype != torch.uint8:
            norm = find_normalize(transforms)
            if norm is not None:
                x = x * torch.tensor(norm.std)[:, None, None] + torch.tensor(norm.mean)[:, None, None]
            elif x.min() < 0 or x.max() > 1:  # unknown scaling: stretch to the visible range
                x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-6)
            x = x * 255
        x = x.clamp(0, 255).round().byte()
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        return np.ascontiguousarray(x.permute(1, 2, 0).numpy())
    arr = _numpy(image)
    return np.ascontiguousarray(arr.astype(np.uint8))


def draw_keypoints(img: np.ndarray, keypoints: np.ndarray, skeleton: Optional[Sequence[Sequence[int]]],
                   color, thick: int) -> None:
    """One instance's keypoints (K, 3: x, y, visibility or 1) and the skeleton limbs between visible ones."""
    vis = keypoints[:, 2] > 0
    for a, b in skeleton or []:
        if a < len(keypoints) and b < len(keypoints) and vis[a] and vis[b]:
            pa = tuple(int(round(float(v))) for v in keypoints[a, :2])
            pb = tuple(int(round(float(v))) for v in keypoints[b, :2])
            cv2.line(img, pa, pb, color, thick, cv2.LINE_AA)
    for k in np.nonzero(vis)[0]:
        p = tuple(int(round(float(v))) for v in keypoints[k, :2])
        cv2.circle(img, p, thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(img, p, thick, color, -1, cv2.LINE_AA)


def draw_instances(image: np.ndarray, boxes: Any, labels: Any, class_names: Optional[Sequence[str]] = None,
                   scores: Any = None, masks: Any = None, score_thr: float = 0.0, keypoints: Any = None,
                   skeleton: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """Boxes, class names (with scores), masks (probabilities or 0/1) and keypoints with their
    skeleton over ``image``."""
    img = np.ascontiguousarray(image).copy()
    boxes = _numpy(boxes).astype(np.float32).reshape(-1, 4)
    labels = _numpy(labels).reshape(-1)
    scores = None if scores is None else _numpy(scores).reshape(-1)
    if masks is not None:
        masks = _numpy(masks)
        if masks.ndim == 4:
            masks = masks[:, 0]
    keypoints = None if keypoints is None else _numpy(keypoints).astype(np.float32)
    thick = max(1, round(max(img.shape[:2]) / 400))
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        if scores is not None and scores[i] < score_thr:
            continue
        color = PALETTE[int(lab) % len(PALETTE)]
        if masks is not None and i < len(masks):
            m = masks[i] > 0.5
            img[m] = (0.5 * img[m] + 0.5 * np.array(color)).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(float(v))) for v in b)
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thick)
        if keypoints is not None and i < len(keypoints):
            draw_keypoints(img, keypoints[i], skeleton, color, thick)
        name = class_names[int(lab)] if class_names and 0 <= int(lab) < len(class_names) else str(int(lab))
        text = name if scores is None else f"{name} {scores[i]:.2f}"
        cv2.putText(img, text, (x0, max(y0 - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thick, color, thick, cv2.LINE_AA)
    return img


def draw_text_lines(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Text lines in the top-left corner on a dark band (classification labels). Images smaller
    than 160 px are enlarged (nearest neighbour) by an integer factor first, so the text is legible."""
    img = np.ascontiguousarray(image).copy()
    if min(img.shape[:2]) < 160:
        k = -(-160 // max(1, min(img.shape[:2])))
        img = cv2.resize(img, (img.shape[1] * k, img.shape[0] * k), interpolation=cv2.INTER_NEAREST)
    scale = max(0.35, min(img.shape[:2]) / 400)
    step = int(14 * scale / 0.35 * 0.9) + 2
    width = max((cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in lines), default=0)
    band = img[: step * len(lines) + 4, : width + 6]
    band[:] = (band * 0.4).astype(np.uint8)
    for k, t in enumerate(lines):
        cv2.putText(img, t, (3, step * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def overlay_labels(image: np.ndarray, label_map: Any, palette: Any, alpha: float = 0.5,
                   ignore_index: int = 255) -> np.ndarray:
    """Blend the colour of each pixel's class over ``image`` (ignored pixels untouched)."""
    img = np.ascontiguousarray(image).copy()
    labels = _numpy(label_map).astype(np.int64)
    if labels.shape != img.shape[:2]:
        labels = cv2.resize(labels.astype(np.int32), (img.shape[1], img.shape[0]),
                            interpolation=cv2.INTER_NEAREST).astype(np.int64)
    pal = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
    valid = (labels != ignore_index) & (labels >= 0) & (labels < len(pal))
    colours = pal[np.clip(labels, 0, len(pal) - 1)]
    img[valid] = ((1 - alpha) * img[valid] + alpha * colours[valid]).astype(np.uint8)
    return img


def save_rgb(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(image[:, :, ::-1])):
        raise OSError(f"could not write {path}")
