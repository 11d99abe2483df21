"""YOLO-format detection data: ``images/`` and ``labels/`` side by side, one text file per image.

    ROOT/images/[SPLIT/]**/NAME.jpg   ROOT/labels/[SPLIT/]**/NAME.txt   (same relative path)

or a list file of image paths (Darknet's ``train.txt``), whose labels are found the same way: the
last ``images`` folder of the path replaced by ``labels`` and the extension by ``.txt``. Each label
line is ``class x_center y_center width height``, the class a 0-based index into the class names
and the coordinates normalised to [0, 1] by the image's width and height. Labels of the items are
``class + 1`` (0 is the background, as for every detection dataset here).

Bad input:
- an image without a label file: MissingFileError naming both paths (the most common YOLO mistake
  is a wrong folder name, which would otherwise train on empty labels); an image without objects
  has an empty label file, or set ``missing_labels: empty`` to accept missing files as empty;
- a line without exactly five fields, a value that is not a number, a class id that is not an
  integer in 0..classes-1, a coordinate outside [0, 1]: DataError naming the file and line;
- a box that reaches past the image border is clipped, a zero-sized one dropped (both counted).

A COCO ground truth is built in memory (``.coco``), so ``CocoEvaluator`` works unchanged.
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...registry import DATASETS, ConfigError
from ...utils.errors import DataError, MissingFileError
from ..image_io import IMG_EXTENSIONS
from .det_base import DetectionDataset, clean_boxes

COORD_TOLERANCE = 1e-6  # float text written from [0, 1] values may round just past the ends


def label_path_for(image_path: str) -> str:
    """Darknet's rule: the last ``images`` folder becomes ``labels``, the extension ``.txt``."""
    parts = os.path.normpath(image_path).split(os.sep)
    idx = max((i for i, p in enumerate(parts[:-1]) if p == "images"), default=None)
    if idx is None:
        raise DataError(f"{image_path}: the path has no 'images' folder, so its label file cannot be found "
                        f"(YOLO layout: .../images/NAME.jpg with .../labels/NAME.txt)")
    parts[idx] = "labels"
    return os.path.splitext(os.sep.join(parts))[0] + ".txt"


def parse_label_file(path: str, num_classes: int) -> np.ndarray:
    """(N, 5) float array of ``class xc yc w h``; raises DataError naming the line."""
    rows = []
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) != 5:
                raise DataError(f"{path}, line {lineno}: expected 5 fields 'class x_center y_center width height', got "
                                f"{len(fields)}: {text[:80]!r}")
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise DataError(f"{path}, line {lineno}: not numbers: {text[:80]!r}") from None
            cls = values[0]
            if cls != int(cls) or not 0 <= cls < num_classes:
                raise DataError(f"{path}, line {lineno}: class id {fields[0]} is not an integer in 0..{num_classes - 1} "
                                f"({num_classes} class names); fix the file or the class list")
            coords = values[1:]
            if any(not (-COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE) for v in coords):
                raise DataError(f"{path}, line {lineno}: coordinates {fields[1:]} are outside [0, 1]; YOLO labels are "
                                f"normalised by the image width and height (pixels / size)")
            rows.append(values)
    return np.asarray(rows, np.float64).reshape(-1, 5)


def _image_size(path: str) -> Tuple[int, int]:
    """(width, height) from the file header; (0, 0) when it does not decode (the reader then
    reports the file as corrupt when the item is read)."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError):
        return 0, 0


def _read_names(path: str) -> List[str]:
    if not os.path.isfile(path):
        raise MissingFileError(f"class names file not found: {path}")
    with open(path, "r", encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names (one name per line)")
    return names


@DATASETS.register()
class YOLODataset(DetectionDataset):
    """Args:
        root: folder holding ``images/`` and ``labels/`` (and the names file).
        split: subfolder of both (``train``, ``val``); none: all of ``images/``.
        list_file: a text file of image paths instead of a folder walk (relative to ``root``).
        classes: class names in id order, or ``names_file`` (one per line; relative to ``root``).
        missing_labels: ``error`` (default) or ``empty`` (an image without a label file has no objects).
        skip_empty: leave out images without objects (training).
        transforms / min_box_size: as every detection dataset.
    """

    def __init__(self, root: str, split: Optional[str] = None, classes: Optional[Sequence[str]] = None,
                 names_file: Optional[str] = None, list_file: Optional[str] = None,
                 transforms: Optional[Sequence[Any]] = None, missing_labels: str = "error", skip_empty: bool = False,
                 min_box_size: float = 1.0):
        super().__init__(transforms, with_masks=False, min_box_size=min_box_size)
        if missing_labels not in ("error", "empty"):
            raise ConfigError(f"YOLODataset.missing_labels: '{missing_labels}' must be 'error' or 'empty'")
        if (classes is None) == (names_file is None):
            raise ConfigError("YOLODataset: give the class names either as classes: [...] or as names_file: PATH")
        names = list(classes) if classes is not None else _read_names(os.path.join(root, names_file))
        self.classes = ["__background__"] + names
        self.label_to_cat = {i: i for i in range(1, len(self.classes))}
        self.root, self.split = root, split
        images = self._list_images(root, split, list_file)
        self.stats["missing_label_files"] = 0
        for n, path in enumerate(images):
            lab_path = label_path_for(path)
            if os.path.isfile(lab_path):
                rows = parse_label_file(lab_path, len(names))
            elif missing_labels == "empty":
                rows = np.zeros((0, 5))
                self.stats["missing_label_files"] += 1
            else:
                raise MissingFileError(f"no label file for {path}: expected {lab_path}. Check the images/ and labels/ "
                                       f"folder names; give images without objects an empty .txt file, or set "
                                       f"missing_labels: empty to accept missing files as empty")
            w, h = _image_size(path)
            xyxy = np.stack([(rows[:, 1] - rows[:, 3] / 2) * w, (rows[:, 2] - rows[:, 4] / 2) * h,
                             (rows[:, 1] + rows[:, 3] / 2) * w, (rows[:, 2] + rows[:, 4] / 2) * h], 1).astype(np.float32)
            boxes, keep = clean_boxes(xyxy, w, h, min_box_size)
            self.stats["clipped_boxes"] += int((np.abs(boxes - xyxy).sum(1) > 1e-3)[keep].sum())
            self.stats["dropped_boxes"] += int((~keep).sum())
            if not keep.any() and skip_empty:
                self.stats["skipped_empty_images"] += 1
                continue
            self.records.append({"path": path, "image_id": n, "width": w, "height": h, "boxes": boxes[keep],
                                 "labels": rows[keep, 0].astype(np.int64) + 1,
                                 "iscrowd": np.zeros(int(keep.sum()), np.int64)})
        if not self.records:
            raise DataError(f"YOLODataset({root}, split={split}): no images with labels found")
        self._coco = None
        self.log_stats(f"YOLODataset({root}{', ' + split if split else ''})")

    @staticmethod
    def _list_images(root: str, split: Optional[str], list_file: Optional[str]) -> List[str]:
        if list_file:
            path = os.path.join(root, list_file)
            if not os.path.isfile(path):
                raise MissingFileError(f"YOLODataset.list_file not found: {path}")
            with open(path, "r", encoding="utf-8") as f:
                images = [os.path.join(root, line.strip()) for line in f if line.strip()]
            missing = [p for p in images if not os.path.isfile(p)]
            if missing:
                raise MissingFileError(f"{len(missing)} image(s) listed in {path} do not exist, e.g. {missing[0]}")
            return images
        folder = os.path.join(root, "images", split) if split else os.path.join(root, "images")
        if not os.path.isdir(folder):
            raise MissingFileError(f"YOLODataset: image folder not found: {folder} (layout: ROOT/images/[SPLIT/] "
                                   f"and ROOT/labels/[SPLIT/])")
        images = []
        for dirpath, dirnames, files in os.walk(folder):
            dirnames.sort()
            images += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
        if not images:
            raise MissingFileError(f"YOLODataset: no images ({', '.join(IMG_EXTENSIONS)}) under {folder}")
        return images

    @property
    def coco(self):
        """The labels as a pycocotools COCO ground truth (for CocoEvaluator), built once."""
        if self._coco is None:
            from pycocotools.coco import COCO
            images, anns = [], []
            for rec in self.records:
                images.append({"id": rec["image_id"], "file_name": rec["path"], "width": rec["width"],
                               "height": rec["height"]})
                for box, label in zip(rec["boxes"], rec["labels"]):
                    x0, y0, x1, y1 = (float(v) for v in box)
                    anns.append({"id": len(anns) + 1, "image_id": rec["image_id"], "category_id": int(label),
                                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
            coco = COCO()
            coco.dataset = {"images": images, "annotations": anns,
                            "categories": [{"id": i, "name": n} for i, n in enumerate(self.classes) if i > 0]}
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
            self._coco = coco
        return self._coco
