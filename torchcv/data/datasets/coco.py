"""COCO-format detection / instance segmentation through pycocotools.

Bad input (each counted and logged, or a clear error):
- images without annotations: kept (``skip_empty: false``, default for evaluation) or skipped
  (``skip_empty: true``, the usual choice for training);
- boxes partly outside the image are clipped; degenerate boxes (w or h < ``min_box_size`` after
  clipping) are dropped, together with their masks;
- an annotation whose ``category_id`` is not in ``categories``: DataError naming it
  (``unknown_category: skip`` drops such annotations instead, counted);
- corrupt JSON, a missing top-level list, an image or annotation without its required fields:
  DataError naming the file, the position or the id;
- missing image files: MissingFileError listing them (``missing_images: skip`` skips, counted).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Optional, Sequence

import numpy as np

from ...registry import DATASETS, ConfigError
from ...utils.errors import DataError, MissingFileError
from .det_base import DetectionDataset, clean_boxes


def load_coco(ann_file: str):
    from pycocotools.coco import COCO
    if not os.path.isfile(ann_file):
        raise MissingFileError(f"annotation file not found: {ann_file}")
    try:
        with open(ann_file, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{ann_file} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                         f"the file is corrupt or truncated -- regenerate or re-download it") from None
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DataError(f"{ann_file}: missing top-level '{key}' list; is this a COCO instances file?")
    if not isinstance(data, dict):
        raise DataError(f"{ann_file}: expected a JSON object with images/annotations/categories, got "
                        f"{type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(f"{ann_file}: '{key}' must be a list, got {type(data[key]).__name__}")
    _check_fields(ann_file, data)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_fields(ann_file: str, data: dict) -> None:
    """The fields every reader below relies on, so a malformed entry is named instead of crashing."""
    for img in data["images"]:
        if not isinstance(img, dict) or any(k not in img for k in ("id", "file_name", "width", "height")):
            raise DataError(f"{ann_file}: image entry {str(img)[:120]} lacks id/file_name/width/height")
    for cat in data["categories"]:
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DataError(f"{ann_file}: category entry {str(cat)[:120]} lacks id/name")
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            raise DataError(f"{ann_file}: annotation {str(ann)[:120]} lacks image_id/category_id")
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise DataError(f"{ann_file}: annotation id {ann.get('id')} (image {ann['image_id']}) has bbox {box!r}; "
                            f"expected [x, y, width, height]")


def ann_to_mask(seg: Any, h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils
    if isinstance(seg, list):  # polygons
        rles = mask_utils.frPyObjects(seg, h, w)
        rle = mask_utils.merge(rles)
    elif isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    return mask_utils.decode(rle)


@DATASETS.register()
class CocoDetection(DetectionDataset):
    """Args:
        img_dir: folder of the images (``file_name`` is relative to it).
        ann_file: COCO instances JSON.
        transforms: v2 transforms (``RandomHorizontalFlip``, ``KeepRatioResize``, ``ColorJitter`` ...).
        with_masks: decode instance masks (Mask R-CNN).
        skip_empty: leave out images with no (usable) annotations.
        contiguous_labels: labels 1..K in sorted category-id order (else the raw category ids,
            which is what torchvision's 91-class COCO models use).
    """

    def __init__(self, img_dir: str, ann_file: str, transforms: Optional[Sequence[Any]] = None,
                 with_masks: bool = True, skip_empty: bool = False, contiguous_labels: bool = True,
                 min_box_size: float = 1.0, unknown_category: str = "error", missing_images: str = "error",
                 max_images: Optional[int] = None):
        super().__init__(transforms, with_masks, min_box_size)
        for opt, val in (("unknown_category", unknown_category), ("missing_images", missing_images)):
            if val not in ("error", "skip"):
                raise ConfigError(f"CocoDetection.{opt}: '{val}' must be 'error' or 'skip'")
        self.img_dir, self.ann_file = img_dir, ann_file
        self.coco = load_coco(ann_file)
        cats = sorted(self.coco.dataset["categories"], key=lambda c: c["id"])
        cat_ids = [c["id"] for c in cats]
        if contiguous_labels:
            self.cat_to_label = {cid: i + 1 for i, cid in enumerate(cat_ids)}
            self.classes = ["__background__"] + [c["name"] for c in cats]
        else:
            self.cat_to_label = {cid: cid for cid in cat_ids}
            names = {c["id"]: c["name"] for c in cats}
            self.classes = ["__background__"] + [names.get(i, f"N/A_{i}") for i in range(1, max(cat_ids) + 1)]
        self.label_to_cat = {v: k for k, v in self.cat_to_label.items()}
        missing = []
        unknown = 0
        for img in sorted(self.coco.dataset["images"], key=lambda d: d["id"]):
            path = os.path.join(img_dir, img["file_name"])
            if not os.path.isfile(path):
                missing.append(path)
                continue
            anns = [a for a in self.coco.imgToAnns.get(img["id"], []) if not a.get("iscrowd", 0)]
            bad = [a for a in anns if a["category_id"] not in self.cat_to_label]
            if bad:
                if unknown_category == "error":
                    raise DataError(f"{ann_file}: annotation id {bad[0].get('id')} (image {img['id']}) has category_id "
                                     f"{bad[0]['category_id']}, which is not in 'categories' (ids {cat_ids[:20]}). "
                                     f"Fix the file or set unknown_category: skip")
                unknown += len(bad)
                anns = [a for a in anns if a["category_id"] in self.cat_to_label]
            w, h = img["width"], img["height"]
            xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
            boxes, keep = clean_boxes(xyxy, w, h, min_box_size)
            self.stats["clipped_boxes"] += int((np.abs(boxes - xyxy).sum(1) > 0)[keep].sum())
            self.stats["dropped_boxes"] += int((~keep).sum())
            anns = [a for a, k in zip(anns, keep) if k]
            if not anns and skip_empty:
                self.stats["skipped_empty_images"] += 1
                continue
            segs = [a.get("segmentation") for a in anns]
            rec = {"path": path, "image_id": img["id"], "width": w, "height": h, "boxes": boxes[keep],
                   "labels": np.array([self.cat_to_label[a["category_id"]] for a in anns], np.int64),
                   "iscrowd": np.zeros(len(anns), np.int64)}
            if with_masks:
                if any(not s for s in segs):
                    raise DataError(f"{ann_file}: image {img['id']} has an annotation without 'segmentation'; "
                                     f"set with_masks: false to train boxes only")
                rec["masks"] = _MaskLoader(segs)
            self.records.append(rec)
            if max_images and len(self.records) >= max_images:
                break
        self.stats["unknown_category_annotations"] = unknown
        if missing:
            if missing_images == "error":
                raise MissingFileError(f"{len(missing)} image file(s) listed in {ann_file} do not exist, e.g. "
                                        f"{missing[0]}. Check img_dir or set missing_images: skip")
            self.stats["skipped_missing_images"] = len(missing)
        self.log_stats(f"CocoDetection({ann_file})")


class _MaskLoader:
    """Decodes an image's masks when the item is read (keeps the record list small)."""

    def __init__(self, segs):
        self.segs = segs

    def __call__(self, h: int, w: int) -> np.ndarray:
        if not self.segs:
            return np.zeros((0, h, w), np.uint8)
        return np.stack([ann_to_mask(s, h, w) for s in self.segs])
