"""Single-person crops for top-down pose models (CPM), from MPII / LSP-style annotations: each entry
names an image, the person's centre and scale, and the joints.

File format (JSON)::

    {"keypoints": ["r_ankle", ...],            # joint names (or give keypoint_names to the dataset)
     "skeleton": [[0, 1], ...],                # optional, 0-based, for pictures
     "annotations": [
        {"image": "000001.jpg",                # relative to img_dir
         "center": [x, y], "scale": s,         # person centre; s = person height / 200 px (MPII)
         "joints": [[x, y, v], ...],           # v: 0 not labelled, 1 labelled but hidden, 2 visible
         "head_box": [x1, y1, x2, y2],         # optional: PCKh's head size
         "bbox": [x, y, w, h]}]}               # optional: PCK's box (default: the joints' extent)

A plain list of entries with ``joints`` [[x, y], ...] and ``joints_vis`` [0/1 ...] (the MPII JSON of
common top-down code bases) reads too, with ``keypoint_names: mpii``.

An item is the square crop of side ``scale * 200 * crop_factor`` (times a random factor of
``scale_range`` and rotated by up to ``rotation`` degrees when training) around the centre, resized
to ``input_size``: image float (3, S, S) in [0, 1]; target ``keypoints`` (1, K, 3) in the crop's
pixels (joints that leave it become unlabelled); meta ``crop_affine`` (the 2x3 map from image to
crop pixels, for mapping predictions back), ``orig_size``, ``input_size``. ``transforms`` (v2) run on
the crop afterwards and move the keypoints; a ``RandomHorizontalFlip`` also swaps left and right by
the keypoint names. Evaluation uses ``ground_truth(index)`` in the image's own coordinates.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ...registry import DATASETS, ConfigError
from ...utils.errors import DataError, MissingFileError
from ..image_io import read_image
from ..keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON, KeypointMeta, KeypointVisibility, bind_flip_pairs
from ..transforms import compose

MPII_KEYPOINT_NAMES = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
                       "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"]
MPII_SKELETON = [(0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11), (11, 12), (12, 7),
                 (7, 13), (13, 14), (14, 15)]
PRESETS = {"mpii": (MPII_KEYPOINT_NAMES, MPII_SKELETON), "coco": (COCO_KEYPOINT_NAMES, COCO_SKELETON)}


def crop_affine(center: Sequence[float], side: float, rotation: float, out_size: Sequence[int]) -> np.ndarray:
    """2x3 map from image to crop coordinates (continuous: pixel i spans [i, i + 1]): the square of
    ``side`` pixels around ``center``, rotated by ``rotation`` degrees, onto an (h, w) crop."""
    h, w = out_size
    s = w / side
    a = math.radians(rotation)
    c, si = math.cos(a) * s, math.sin(a) * s
    cx, cy = center
    # rotate+scale about the centre, then put the centre in the middle of the crop
    return np.array([[c, si, w / 2 - c * cx - si * cy],
                     [-si, c, h / 2 + si * cx - c * cy]], np.float64)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ affine[:, :2].T + affine[:, 2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(affine, np.float64))


def _index_space(affine: np.ndarray) -> np.ndarray:
    """The same map between pixel indices (centre of pixel i at i), which is what warpAffine takes."""
    m = np.array(affine, np.float64)
    m[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5
    return m


@DATASETS.register()
class PoseCrops(Dataset):
    """Args:
        img_dir, ann_file: images and the crop annotations (format above).
        input_size: crop side (or [h, w]) in pixels (CPM: 368).
        crop_factor: crop side = scale * scale_unit * crop_factor (1.25: a margin around the person).
        scale_unit: pixels per unit of ``scale`` (MPII: 200).
        scale_range: random crop-size factor [lo, hi] (training; [1, 1] = none).
        rotation: random rotation up to this many degrees either way (training).
        transforms: v2 transforms on the crop (colour; a horizontal flip swaps left/right joints).
        keypoint_names: names, or ``mpii`` / ``coco``; default: the file's ``keypoints``.
        skeleton / flip_pairs: 0-based; defaults: the file's / the preset's skeleton, pairs found by name.
        missing_images: ``error`` or ``skip``.
        max_images: read only the first N annotations.
    """

    def __init__(self, img_dir: str, ann_file: str, input_size: Union[int, Sequence[int]] = 368,
                 crop_factor: float = 1.25, scale_unit: float = 200.0, scale_range: Sequence[float] = (1.0, 1.0),
                 rotation: float = 0.0, transforms: Optional[Sequence[Any]] = None,
                 keypoint_names: Union[None, str, Sequence[str]] = None,
                 skeleton: Optional[Sequence[Sequence[int]]] = None, flip_pairs: Optional[Sequence[Sequence[int]]] = None,
                 missing_images: str = "error", max_images: Optional[int] = None):
        if missing_images not in ("error", "skip"):
            raise ConfigError(f"PoseCrops.missing_images: '{missing_images}' must be 'error' or 'skip'")
        size = [int(input_size)] * 2 if isinstance(input_size, (int, float)) else [int(v) for v in input_size]
        if len(size) != 2 or min(size) < 8:
            raise ConfigError(f"PoseCrops.input_size={input_size!r}: give a side or [h, w] of at least 8 pixels")
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ConfigError(f"PoseCrops.scale_range={list(scale_range)}: give [lo, hi] with 0 < lo <= hi")
        self.img_dir, self.ann_file = img_dir, ann_file
        self.input_size = tuple(size)
        self.crop_factor, self.scale_unit = float(crop_factor), float(scale_unit)
        self.scale_range, self.rotation = (float(scale_range[0]), float(scale_range[1])), float(rotation)
        data = _load_json(ann_file)
        entries = data["annotations"] if isinstance(data, dict) else data
        if isinstance(keypoint_names, str):
            if keypoint_names not in PRESETS:
                raise ConfigError(f"PoseCrops.keypoint_names: '{keypoint_names}' is not a preset ({', '.join(PRESETS)}); "
                                  f"give the list of names")
            keypoint_names, preset_skeleton = PRESETS[keypoint_names]
            skeleton = preset_skeleton if skeleton is None else skeleton
        if keypoint_names is None:
            keypoint_names = data.get("keypoints") if isinstance(data, dict) else None
            if skeleton is None and isinstance(data, dict):
                skeleton = data.get("skeleton")
        if not keypoint_names:
            raise DataError(f"{ann_file}: no keypoint names: add a top-level 'keypoints' list to the file or set the "
                            f"dataset's keypoint_names (a list, or mpii / coco)")
        self.keypoint_meta = KeypointMeta.create(keypoint_names, skeleton, flip_pairs, None,
                                                 where=f"PoseCrops({ann_file}) keypoints")
        self.with_keypoints = True
        self.transforms = bind_flip_pairs(compose(transforms), self.keypoint_meta)
        self.records: List[Dict[str, Any]] = []
        missing = []
        for i, e in enumerate(entries):
            rec = _parse_entry(ann_file, i, e, self.keypoint_meta.num_keypoints)
            rec["path"] = os.path.join(img_dir, rec["image"])
            if not os.path.isfile(rec["path"]):
                missing.append(rec["path"])
                continue
            self.records.append(rec)
            if max_images and len(self.records) >= max_images:
                break
        if missing and missing_images == "error":
            raise MissingFileError(f"{len(missing)} image file(s) named in {ann_file} do not exist, e.g. {missing[0]}. "
                                   f"Check img_dir or set missing_images: skip")
        self.skipped_missing = len(missing)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def classes(self) -> List[str]:
        return ["__background__", "person"]

    def ground_truth(self, index: int) -> Dict[str, Any]:
        """The annotation in the image's coordinates: ``joints`` (K, 3), ``bbox`` (x, y, w, h) and
        ``head_box`` (x1, y1, x2, y2, or None)."""
        rec = self.records[index]
        return {"joints": rec["joints"], "bbox": rec["bbox"], "head_box": rec["head_box"]}

    def __getitem__(self, index: int):
        rec = self.records[index]
        image = read_image(rec["path"])
        h, w = image.shape[-2:]
        side = rec["scale"] * self.scale_unit * self.crop_factor
        rotation = 0.0
        if self.scale_range != (1.0, 1.0):
            side *= float(np.random.uniform(*self.scale_range))
        if self.rotation > 0:
            rotation = float(np.random.uniform(-self.rotation, self.rotation))
        affine = crop_affine(rec["center"], side, rotation, self.input_size)
        oh, ow = self.input_size
        crop = cv2.warpAffine(image.permute(1, 2, 0).numpy(), _index_space(affine), (ow, oh), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        joints = rec["joints"]
        xy = apply_affine(affine, joints[:, :2]).astype(np.float32)
        target = {"keypoints": tv_tensors.KeyPoints(torch.from_numpy(xy)[None], canvas_size=(oh, ow)),
                  "keypoint_visibility": torch.from_numpy(joints[None, :, 2].copy()).as_subclass(KeypointVisibility)}
        img, target = self.transforms(tv_tensors.Image(torch.from_numpy(crop).permute(2, 0, 1).contiguous()), target)
        img = img.as_subclass(torch.Tensor)
        if img.dtype == torch.uint8:
            img = img.float().div_(255)
        xy = target["keypoints"].as_subclass(torch.Tensor).float()
        vis = target["keypoint_visibility"].as_subclass(torch.Tensor).float()
        ih, iw = img.shape[-2:]
        inside = (xy[..., 0] >= 0) & (xy[..., 1] >= 0) & (xy[..., 0] < iw) & (xy[..., 1] < ih)
        vis = torch.where(inside, vis, torch.zeros_like(vis))
        meta = {"index": index, "path": rec["path"], "orig_size": (int(h), int(w)), "input_size": (int(ih), int(iw)),
                "crop_affine": affine.tolist()}
        return img, {"keypoints": torch.cat([xy, vis[..., None]], -1)}, meta


def _load_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise MissingFileError(f"annotation file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return data
    if isinstance(data, list):
        return data
    raise DataError(f"{path}: expected a list of crop annotations or an object with an 'annotations' list")


def _number_list(v: Any, n: int) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == n and all(isinstance(x, (int, float)) for x in v)


def _parse_entry(path: str, i: int, e: Any, k: int) -> Dict[str, Any]:
    if not isinstance(e, dict):
        raise DataError(f"{path}: annotation {i} is {type(e).__name__}, expected an object")
    where = f"{path}: annotation {i} (image {e.get('image')})"
    if not isinstance(e.get("image"), str):
        raise DataError(f"{path}: annotation {i} has no 'image' file name")
    if "center" not in e or "scale" not in e:
        raise DataError(f"{where} has no 'center'/'scale': each crop needs the person's centre [x, y] and scale "
                        f"(person height / 200 px)")
    if not _number_list(e["center"], 2):
        raise DataError(f"{where}: center {e['center']!r} must be [x, y]")
    if not isinstance(e["scale"], (int, float)) or not e["scale"] > 0:
        raise DataError(f"{where}: scale {e['scale']!r} must be a positive number")
    joints = e.get("joints")
    if not isinstance(joints, list) or len(joints) != k:
        raise DataError(f"{where}: {len(joints) if isinstance(joints, list) else 'no'} joints, expected {k}")
    if "joints_vis" in e:  # the common MPII JSON: [x, y] joints and a separate 0/1 list
        vis = e["joints_vis"]
        if not isinstance(vis, list) or len(vis) != k:
            raise DataError(f"{where}: joints_vis must list {k} values")
        joints = [list(j[:2]) + [2 if v else 0] for j, v in zip(joints, vis)]
    if not all(_number_list(j, 3) for j in joints):
        raise DataError(f"{where}: joints must be [x, y, visibility] triples (or [x, y] with joints_vis)")
    arr = np.asarray(joints, np.float32).reshape(k, 3)
    if not np.isin(arr[:, 2], (0, 1, 2)).all():
        raise DataError(f"{where}: joint visibility must be 0, 1 or 2")
    head = e.get("head_box")
    if head is not None and not _number_list(head, 4):
        raise DataError(f"{where}: head_box {head!r} must be [x1, y1, x2, y2]")
    bbox = e.get("bbox")
    if bbox is not None and not _number_list(bbox, 4):
        raise DataError(f"{where}: bbox {bbox!r} must be [x, y, w, h]")
    if bbox is None:
        lab = arr[arr[:, 2] > 0, :2]
        if len(lab):
            x0, y0 = lab.min(0)
            x1, y1 = lab.max(0)
            bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    return {"image": e["image"], "center": [float(v) for v in e["center"]], "scale": float(e["scale"]),
            "joints": arr, "head_box": [float(v) for v in head] if head is not None else None,
            "bbox": [float(v) for v in bbox] if bbox is not None else None}
