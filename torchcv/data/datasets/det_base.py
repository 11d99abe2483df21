"""Common body of detection datasets: read an image, build the tutorial's target dict, run the
v2 transforms (boxes and masks move with the image), drop what became degenerate.

Item: ``(image, target, meta)`` -- image float (3, H, W) in [0, 1]; target ``boxes`` (N, 4) xyxy
float, ``labels`` int64, ``masks`` (N, H, W) uint8 (when the dataset has masks), ``keypoints``
(N, K, 3) float x, y, visibility (when it has keypoints), ``image_id``, ``area``, ``iscrowd``; meta
``index``, ``path``, ``image_id``, ``orig_size`` (H, W of the file) and ``input_size`` (H, W after
the transforms). Keypoints move with the image through the v2 transforms; one that ends outside
the image becomes invisible (visibility 0), and a horizontal flip swaps left and right keypoints by
the dataset's ``keypoint_meta`` (torchcv.data.keypoints).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ...utils.errors import DataError
from ..image_io import read_image
from ..keypoints import KeypointVisibility
from ..transforms import compose

logger = logging.getLogger("torchcv")


def clean_boxes(boxes: np.ndarray, width: int, height: int, min_size: float = 1.0):
    """Clip xyxy boxes to the image; return (clipped boxes, keep mask). Boxes smaller than
    ``min_size`` after clipping (degenerate, or entirely outside the image) are not kept."""
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return boxes, keep


class DetectionDataset(Dataset):
    """Subclasses fill ``self.records``: dicts with ``path``, ``image_id``, ``width``, ``height`` and
    ``boxes`` (N, 4 xyxy np.float32), ``labels`` (N,), ``iscrowd`` (N,), optional ``area``, a
    ``masks`` callable returning (N, H, W) uint8 and ``keypoints`` (N, K, 3) float32, and
    ``self.classes`` (names, index 0 = background); with keypoints also ``self.keypoint_meta``
    (then call ``bind_flip_pairs(self.transforms, meta)``)."""

    def __init__(self, transforms: Optional[Sequence[Any]] = None, with_masks: bool = True,
                 min_box_size: float = 1.0):
        self.transforms = compose(transforms)
        self.with_masks = with_masks
        self.with_keypoints = False
        self.keypoint_meta = None
        self.min_box_size = min_box_size
        self.records: List[Dict[str, Any]] = []
        self.classes: List[str] = ["__background__"]
        self.stats = {"clipped_boxes": 0, "dropped_boxes": 0, "skipped_empty_images": 0,
                      "skipped_missing_images": 0, "dropped_after_transform": 0}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def aspect_ratios(self) -> List[float]:
        """width / height of every image, from the annotations (no image is read)."""
        return [r["width"] / max(r["height"], 1) for r in self.records]

    def log_stats(self, name: str) -> None:
        counts = {k: v for k, v in self.stats.items() if v}
        logger.info("%s: %d images, %d classes%s", name, len(self.records), self.num_classes - 1,
                    ("; " + ", ".join(f"{k}={v}" for k, v in counts.items())) if counts else "")

    def __getitem__(self, index: int):
        rec = self.records[index]
        image = read_image(rec["path"])
        h, w = image.shape[-2:]
        n = len(rec["boxes"])
        boxes = torch.as_tensor(rec["boxes"], dtype=torch.float32).reshape(-1, 4)
        target: Dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
            "labels": torch.as_tensor(rec["labels"], dtype=torch.int64).reshape(-1),
            "iscrowd": torch.as_tensor(rec.get("iscrowd", np.zeros(n)), dtype=torch.int64).reshape(-1),
        }
        if self.with_masks and "masks" in rec:
            target["masks"] = tv_tensors.Mask(torch.as_tensor(rec["masks"](h, w), dtype=torch.uint8).reshape(-1, h, w))
        if self.with_keypoints and "keypoints" in rec:
            kp = torch.as_tensor(rec["keypoints"], dtype=torch.float32).reshape(n, -1, 3)
            target["keypoints"] = tv_tensors.KeyPoints(kp[..., :2], canvas_size=(h, w))
            target["keypoint_visibility"] = kp[..., 2].as_subclass(KeypointVisibility)
        image, target = self.transforms(tv_tensors.Image(image), target)
        image = image.as_subclass(torch.Tensor)
        if image.dtype == torch.uint8:
            image = image.float().div_(255)
        b = target["boxes"].as_subclass(torch.Tensor).float()
        keep = ((b[:, 2] - b[:, 0]) >= self.min_box_size) & ((b[:, 3] - b[:, 1]) >= self.min_box_size)
        out = {"boxes": b[keep], "labels": target["labels"][keep], "iscrowd": target["iscrowd"][keep],
               "image_id": torch.tensor(rec["image_id"])}
        if "keypoints" in target:
            xy = target["keypoints"].as_subclass(torch.Tensor).float()
            if xy.shape[0] != b.shape[0]:
                raise DataError(f"{rec['path']}: a transform dropped instances ({xy.shape[0]} keypoint sets for "
                                f"{b.shape[0]} boxes); with keypoints use transforms that keep every instance "
                                f"(flips, resizes, colour)")
            ih, iw = image.shape[-2:]
            inside = (xy[..., 0] >= 0) & (xy[..., 1] >= 0) & (xy[..., 0] <= iw) & (xy[..., 1] <= ih)
            visibility = target["keypoint_visibility"].as_subclass(torch.Tensor)
            vis = torch.where(inside, visibility, torch.zeros_like(visibility))
            out["keypoints"] = torch.cat([xy, vis[..., None]], dim=-1)[keep]
        if "masks" in target:
            out["masks"] = target["masks"].as_subclass(torch.Tensor)[keep]
            out["area"] = out["masks"].flatten(1).sum(1).float()
        else:
            out["area"] = (out["boxes"][:, 2] - out["boxes"][:, 0]) * (out["boxes"][:, 3] - out["boxes"][:, 1])
        meta = {"index": index, "path": rec["path"], "image_id": rec["image_id"], "orig_size": (int(h), int(w)),
                "input_size": tuple(int(s) for s in image.shape[-2:])}
        return image, out, meta
