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
from ..keypoints import KeypointMeta, bind_flip_pairs
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
        with_keypoints: read ``keypoints`` (COCO person-keypoint files) into targets (N, K, 3).
        min_keypoints_per_image: leave out images with fewer labelled keypoints in all (torchvision's
            references use 10 for training); images without annotations follow ``skip_empty``.
        keypoint_names / skeleton / flip_pairs / sigmas: keypoint metadata; default: the names and
            skeleton of the file's category (skeleton 1-based there, 0-based here), left/right pairs
            found by name, COCO's OKS sigmas when the names are COCO's 17.
    """

    def __init__(self, img_dir: str, ann_file: str, transforms: Optional[Sequence[Any]] = None,
                 with_masks: bool = True, skip_empty: bool = False, contiguous_labels: bool = True,
                 min_box_size: float = 1.0, unknown_category: str = "error", missing_images: str = "error",
                 max_images: Optional[int] = None, with_keypoints: bool = False, min_keypoints_per_image: int = 0,
                 keypoint_names: Optional[Sequence[str]] = None, skeleton: Optional[Sequence[Sequence[int]]] = None,
                 flip_pairs: Optional[Sequence[Sequence[int]]] = None, sigmas: Optional[Sequence[float]] = None):
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
        self.with_keypoints = with_keypoints
        if with_keypoints:
            self.keypoint_meta = _keypoint_meta(ann_file, cats, keypoint_names, skeleton, flip_pairs, sigmas)
            bind_flip_pairs(self.transforms, self.keypoint_meta)
        elif any(x is not None for x in (keypoint_names, skeleton, flip_pairs, sigmas)) or min_keypoints_per_image:
            raise ConfigError("CocoDetection: keypoint options given without with_keypoints: true")
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
            keypoints = _read_keypoints(ann_file, anns, self.keypoint_meta) if with_keypoints else None
            if keypoints is not None and anns and int((keypoints[..., 2] > 0).sum()) < min_keypoints_per_image:
                self.stats["skipped_few_keypoints"] = self.stats.get("skipped_few_keypoints", 0) + 1
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
            if keypoints is not None:
                rec["keypoints"] = keypoints
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


def _keypoint_meta(ann_file: str, cats: list, names, skeleton, flip_pairs, sigmas) -> KeypointMeta:
    with_kp = [c for c in cats if c.get("keypoints")]
    if names is None:
        if not with_kp:
            raise DataError(f"{ann_file}: no category lists 'keypoints' names: this is not a keypoint annotation "
                            f"file. Use person_keypoints_*.json, give keypoint_names, or set with_keypoints: false")
        names = with_kp[0]["keypoints"]
        if skeleton is None and with_kp[0].get("skeleton"):
            skeleton = [[a - 1, b - 1] for a, b in with_kp[0]["skeleton"]]  # COCO's skeleton is 1-based
    return KeypointMeta.create(names, skeleton, flip_pairs, sigmas, where=f"CocoDetection({ann_file}) keypoints")


def _read_keypoints(ann_file: str, anns: list, meta: KeypointMeta) -> np.ndarray:
    """(N, K, 3) float32 from the annotations' flat [x1, y1, v1, ...] lists; visibility in {0, 1, 2}."""
    k = meta.num_keypoints
    out = np.zeros((len(anns), k, 3), np.float32)
    for i, a in enumerate(anns):
        kp = a.get("keypoints")
        if kp is None:
            continue  # an instance without labelled keypoints: all invisible
        if not isinstance(kp, list) or len(kp) != 3 * k:
            raise DataError(f"{ann_file}: annotation id {a.get('id')} has {len(kp) if isinstance(kp, list) else kp!r} "
                            f"keypoint values; expected {3 * k} ({k} keypoints x (x, y, visibility))")
        arr = np.asarray(kp, np.float32).reshape(k, 3)
        bad = ~np.isin(arr[:, 2], (0, 1, 2))
        if bad.any():
            raise DataError(f"{ann_file}: annotation id {a.get('id')} has keypoint visibility "
                            f"{arr[bad, 2][0]:g} (keypoint {meta.names[int(np.argmax(bad))]}); COCO visibility is "
                            f"0 (not labelled), 1 (labelled, hidden) or 2 (visible)")
        out[i] = arr
    return out


class _MaskLoader:
    """Decodes an image's masks when the item is read (keeps the record list small)."""

    def __init__(self, segs):
        self.segs = segs

    def __call__(self, h: int, w: int) -> np.ndarray:
        if not self.segs:
            return np.zeros((0, h, w), np.uint8)
        return np.stack([ann_to_mask(s, h, w) for s in self.segs])
