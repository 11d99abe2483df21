"""COCO person keypoints for bottom-up pose models (OpenPose): ``CocoDetection`` with keypoints, plus
an ignore mask per image where people are present but not labelled.

A bottom-up model learns "background" everywhere no keypoint is labelled, so a crowd region or a
person annotated without keypoints would teach it that people are background. The ignore mask
marks them (the loss skips those pixels), as OpenPose's "mask_miss" does:

- ``ignore_crowds``: the segmentation of every ``iscrowd`` annotation;
- ``ignore_unlabelled``: the segmentation (or, without one, the box) of every person annotated with
  fewer than ``min_keypoints_per_person`` labelled keypoints;
- ``mask_dir``: instead, or in addition, one greyscale PNG per image, ``<mask_dir>/<image stem>.png``,
  non-zero = ignore, the size of the image (a mask of another size is an error naming both sizes).

Target (besides CocoDetection's ``boxes``, ``labels``, ``keypoints`` ...): ``ignore_mask`` (H, W)
uint8, transformed with the image. The dataset's ``keypoint_meta`` gives the skeleton whose limbs
the part affinity fields follow.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

import numpy as np

from ...registry import DATASETS
from ...utils.errors import DataError, MissingFileError
from ..image_io import read_mask
from .coco import CocoDetection, ann_to_mask


@DATASETS.register()
class CocoPose(CocoDetection):
    """Args: those of ``CocoDetection`` for keypoint files (``with_keypoints`` is implied, no instance
    masks) and
        ignore_crowds: ignore the regions of crowd annotations.
        ignore_unlabelled: ignore people with fewer than ``min_keypoints_per_person`` labelled keypoints.
        min_keypoints_per_person: see above (default 1: people annotated without any keypoint).
        mask_dir: a folder of ignore-mask PNGs named after the images (non-zero = ignore).
    """

    def __init__(self, img_dir: str, ann_file: str, transforms: Optional[Sequence[Any]] = None,
                 ignore_crowds: bool = True, ignore_unlabelled: bool = True, min_keypoints_per_person: int = 1,
                 mask_dir: Optional[str] = None, skip_empty: bool = False, min_keypoints_per_image: int = 0,
                 keypoint_names: Optional[Sequence[str]] = None, skeleton: Optional[Sequence[Sequence[int]]] = None,
                 flip_pairs: Optional[Sequence[Sequence[int]]] = None, sigmas: Optional[Sequence[float]] = None,
                 contiguous_labels: bool = True, min_box_size: float = 1.0, unknown_category: str = "error",
                 missing_images: str = "error", max_images: Optional[int] = None):
        super().__init__(img_dir, ann_file, transforms, with_masks=False, skip_empty=skip_empty,
                         contiguous_labels=contiguous_labels, min_box_size=min_box_size,
                         unknown_category=unknown_category, missing_images=missing_images, max_images=max_images,
                         with_keypoints=True, min_keypoints_per_image=min_keypoints_per_image,
                         keypoint_names=keypoint_names, skeleton=skeleton, flip_pairs=flip_pairs, sigmas=sigmas)
        if mask_dir is not None and not os.path.isdir(mask_dir):
            raise MissingFileError(f"CocoPose.mask_dir: folder not found: {mask_dir}")
        self.mask_dir = mask_dir
        regions = 0
        for rec in self.records:
            anns = self.coco.imgToAnns.get(rec["image_id"], [])
            ignored = [a for a in anns if (ignore_crowds and a.get("iscrowd", 0))
                       or (ignore_unlabelled and not a.get("iscrowd", 0)
                           and _labelled(a) < min_keypoints_per_person)]
            regions += len(ignored)
            mask_file = None
            if mask_dir is not None:
                mask_file = os.path.join(mask_dir, os.path.splitext(os.path.basename(rec["path"]))[0] + ".png")
            if ignored or mask_file:
                rec["ignore_mask"] = IgnoreMask(ignored, mask_file, rec["path"])
        self.stats["ignored_regions"] = regions


def _labelled(ann: dict) -> int:
    kp = ann.get("keypoints") or []
    return int(ann["num_keypoints"]) if "num_keypoints" in ann else sum(1 for v in kp[2::3] if v > 0)


class IgnoreMask:
    """Builds an image's ignore mask when the item is read: the union of the ignored annotations'
    regions and of the mask file."""

    def __init__(self, anns: List[dict], mask_file: Optional[str], image_path: str):
        self.anns, self.mask_file, self.image_path = anns, mask_file, image_path

    def __call__(self, h: int, w: int) -> np.ndarray:
        mask = np.zeros((h, w), np.uint8)
        for a in self.anns:
            seg = a.get("segmentation")
            if seg:
                mask |= ann_to_mask(seg, h, w).astype(np.uint8)
            else:  # no outline: the box
                x, y, bw, bh = a["bbox"]
                mask[max(int(y), 0):int(np.ceil(y + bh)), max(int(x), 0):int(np.ceil(x + bw))] = 1
        if self.mask_file is not None:
            if not os.path.isfile(self.mask_file):
                raise MissingFileError(f"ignore mask not found: {self.mask_file} (mask_dir needs one PNG per image, "
                                       f"named after it)")
            m = read_mask(self.mask_file)
            if m.shape[:2] != (h, w):
                raise DataError(f"{self.mask_file}: ignore mask is {m.shape[1]}x{m.shape[0]} (WxH) but its image "
                                f"{self.image_path} is {w}x{h}; masks must have the image's size")
            mask |= (m.reshape(h, w) > 0).astype(np.uint8)
        return mask
