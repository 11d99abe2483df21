"""The PennFudan pedestrian dataset exactly as in the torchvision fine-tuning tutorial:
``root/PNGImages/*.png`` and ``root/PedMasks/*_mask.png`` where each pedestrian has its own
colour index in the mask (0 = background). Boxes come from the instance masks; one class
(label 1, person). ``indices`` selects a subset (the tutorial's train/test split of the last 50).
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

import cv2
import numpy as np

from ...registry import DATASETS
from ...utils.errors import CorruptImageError, DataError, MissingFileError
from .det_base import DetectionDataset


def instance_masks(mask_path: str) -> np.ndarray:
    m = cv2.imread(mask_path, cv2.IMREAD_UNCHANGED)
    if m is None:
        raise CorruptImageError(f"cannot decode mask {mask_path}: the file is corrupt or not an image")
    if m.ndim == 3:
        m = m[:, :, 0]
    ids = np.unique(m)
    ids = ids[ids != 0]
    return (m[None] == ids[:, None, None]).astype(np.uint8)


@DATASETS.register()
class PennFudanDataset(DetectionDataset):
    def __init__(self, root: str, transforms: Optional[Sequence[Any]] = None, indices: Optional[List[int]] = None,
                 split: Optional[str] = None, num_test: int = 50, with_masks: bool = True):
        super().__init__(transforms, with_masks)
        self.classes = ["__background__", "person"]
        for sub in ("PNGImages", "PedMasks"):
            if not os.path.isdir(os.path.join(root, sub)):
                raise MissingFileError(f"PennFudanDataset: {os.path.join(root, sub)} not found; root should be the "
                                       f"PennFudanPed folder (with PNGImages/ and PedMasks/)")
        imgs = sorted(os.listdir(os.path.join(root, "PNGImages")))
        masks = sorted(os.listdir(os.path.join(root, "PedMasks")))
        if len(imgs) != len(masks):
            raise DataError(f"{root}: {len(imgs)} images but {len(masks)} masks")
        order = list(range(len(imgs)))
        if split is not None:  # the tutorial: a fixed permutation (seed 1), the last num_test for testing
            import torch
            perm = torch.randperm(len(imgs), generator=torch.Generator().manual_seed(1)).tolist()
            order = perm[:-num_test] if split == "train" else perm[-num_test:]
        if indices is not None:
            order = [order[i] for i in indices]
        for i in order:
            mpath = os.path.join(root, "PedMasks", masks[i])
            inst = instance_masks(mpath)
            h, w = inst.shape[-2:]
            boxes = []
            for m in inst:
                ys, xs = np.nonzero(m)
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
            boxes = np.array(boxes, np.float32).reshape(-1, 4)
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            self.stats["dropped_boxes"] += int((~keep).sum())
            self.records.append({"path": os.path.join(root, "PNGImages", imgs[i]), "image_id": i, "width": w,
                                 "height": h, "boxes": boxes[keep], "labels": np.ones(int(keep.sum()), np.int64),
                                 "masks": _Masks(mpath, keep)})
        self.log_stats(f"PennFudanDataset({root})")


class _Masks:
    def __init__(self, path, keep):
        self.path, self.keep = path, keep

    def __call__(self, h, w):
        return instance_masks(self.path)[self.keep]
