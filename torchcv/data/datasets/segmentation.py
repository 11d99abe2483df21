"""Semantic segmentation datasets: a generic image+mask folder reader and the VOC 2012, Cityscapes
and ADE20K layouts on top of it.

An item is ``(image, target, meta)``: ``image`` float CHW after the transforms, ``target`` a
LongTensor HxW of class indices with 255 = ignore, ``meta`` = ``{index, path, ann_path, orig_size,
input_size}``. Masks are read as stored, so palette PNGs (VOC) give class indices directly. Bad
data raises a ``SegDataError`` naming the file: a label value outside ``[0, num_classes)`` that is
not the ignore value, an image and mask of different sizes, an image without its mask.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ...registry import DATASETS, ConfigError
from ...utils.errors import DataError
from ..image_io import read_image, read_mask
from ..transforms import compose

IGNORE = 255


class SegDataError(DataError):
    """A segmentation sample is malformed; the message names the file."""


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: class i's bits are spread over the high bits of R, G and B."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")
CITYSCAPES_PALETTE = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                      (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                      (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                      (0, 80, 100), (0, 0, 230), (119, 11, 32)]
# Cityscapes labelIds -> trainIds (the 19 evaluated classes; everything else is ignored)
CITYSCAPES_LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def cityscapes_lut() -> np.ndarray:
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for k, v in CITYSCAPES_LABEL_TO_TRAIN.items():
        lut[k] = v
    return lut


@DATASETS.register()
class SegFolderDataset(Dataset):
    """Generic image + mask folders: ``root/img_dir/<name><img_suffix>`` and
    ``root/ann_dir/<name><ann_suffix>``; ``split_file`` (relative to root) lists names one a line,
    otherwise every image in ``img_dir`` (recursively) is used.

    Args:
        num_classes / classes: number (and optionally names) of classes.
        palette: colours for written predictions (default: the VOC colour map).
        label_map: ``{stored value: class index}`` applied on load (unlisted values unchanged).
        reduce_zero_label: stored 0 -> ignore and every other value - 1 (ADE20K convention).
        transforms: list of transform configs applied to (image, mask).
    """

    def __init__(self, root: str, img_dir: str = "images", ann_dir: str = "masks", img_suffix: str = ".jpg",
                 ann_suffix: str = ".png", split_file: Optional[str] = None, num_classes: Optional[int] = None,
                 classes: Optional[Sequence[str]] = None, palette: Optional[Sequence[Sequence[int]]] = None,
                 label_map: Optional[Dict[int, int]] = None, reduce_zero_label: bool = False,
                 ignore_index: int = IGNORE, transforms: Optional[List[Any]] = None):
        super().__init__()
        if num_classes is None and classes is None:
            raise ConfigError(f"{type(self).__name__}: give num_classes or classes")
        self.classes = tuple(classes) if classes else tuple(f"class_{i}" for i in range(num_classes))
        self.num_classes = int(num_classes or len(self.classes))
        if len(self.classes) != self.num_classes:
            raise ConfigError(f"{type(self).__name__}: {len(self.classes)} class names for num_classes={num_classes}")
        self.palette = np.array(palette, dtype=np.uint8) if palette is not None else voc_palette()[: self.num_classes]
        self.root, self.ignore_index, self.reduce_zero_label = root, ignore_index, reduce_zero_label
        self.lut = None
        if label_map:
            self.lut = np.arange(256, dtype=np.uint8)
            for k, v in label_map.items():
                self.lut[int(k)] = int(v)
        self.samples = self.find_samples(root, img_dir, ann_dir, img_suffix, ann_suffix, split_file)
        if not self.samples:
            raise ConfigError(f"{type(self).__name__}: no images found under {os.path.join(root, img_dir)} "
                              f"(suffix {img_suffix!r}{', split ' + split_file if split_file else ''}). "
                              f"Check data.root; for the built-in data run its generator under datasets/.")
        self.transforms = compose(transforms, key=f"{type(self).__name__}.transforms")

    @staticmethod
    def find_samples(root, img_dir, ann_dir, img_suffix, ann_suffix, split_file) -> List[Tuple[str, str]]:
        img_root, ann_root = os.path.join(root, img_dir), os.path.join(root, ann_dir)
        if not os.path.isdir(img_root):
            raise ConfigError(f"image folder not found: {img_root}. Check data.root (for built-in data run the "
                              f"generator under datasets/)")
        if split_file:
            path = os.path.join(root, split_file)
            if not os.path.isfile(path):
                raise ConfigError(f"split file not found: {path}")
            with open(path) as f:
                names = [ln.strip() for ln in f if ln.strip()]
        else:
            files = glob.glob(os.path.join(img_root, "**", "*" + img_suffix), recursive=True)
            names = sorted(os.path.relpath(p, img_root)[: -len(img_suffix)] for p in files)
        samples = []
        for n in names:
            img, ann = os.path.join(img_root, n + img_suffix), os.path.join(ann_root, n + ann_suffix)
            if not os.path.isfile(img):
                raise SegDataError(f"image listed but missing: {img}")
            if not os.path.isfile(ann):
                raise SegDataError(f"image {img} has no mask: expected {ann}")
            samples.append((img, ann))
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def load_mask(self, path: str) -> np.ndarray:
        m = read_mask(path)
        if self.lut is not None:
            m = self.lut[m]
        if self.reduce_zero_label:
            m = m.astype(np.int32)
            m = np.where(m == 0, IGNORE, m - 1)
            m[m == IGNORE - 1] = IGNORE
        return m

    def check_mask(self, m: np.ndarray, path: str) -> None:
        bad = (m >= self.num_classes) & (m != self.ignore_index)
        if bad.any():
            values = sorted(set(np.unique(m[bad]).tolist()))
            raise SegDataError(f"{path}: label value(s) {values[:10]} outside the class range 0..{self.num_classes - 1} "
                               f"(and not the ignore value {self.ignore_index}). Map them with label_map, "
                               f"fix num_classes, or preprocess the masks (datasets/cityscapes_trainids.py).")

    def __getitem__(self, index: int):
        img_path, ann_path = self.samples[index]
        image = read_image(img_path)
        mask = self.load_mask(ann_path)
        if tuple(mask.shape[:2]) != tuple(image.shape[-2:]):
            raise SegDataError(f"{ann_path}: mask size {tuple(mask.shape[:2])} differs from image {img_path} size "
                               f"{tuple(image.shape[-2:])}")
        self.check_mask(mask, ann_path)
        image = tv_tensors.Image(image)
        target = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask).astype(np.uint8)))
        image, target = self.transforms(image, target)
        if image.dtype == torch.uint8:
            image = image.float() / 255.0
        meta = {"index": index, "path": img_path, "ann_path": ann_path, "orig_size": tuple(mask.shape[:2]),
                "input_size": tuple(image.shape[-2:])}
        return image.as_subclass(torch.Tensor), target.as_subclass(torch.Tensor).long(), meta


@DATASETS.register()
class VOCSegDataset(SegFolderDataset):
    """PASCAL VOC 2012 layout: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNGs),
    ``ImageSets/Segmentation/<split>.txt``. The built-in shapes data uses the same layout."""

    def __init__(self, root: str, split: str = "train", classes: Optional[Sequence[str]] = None,
                 num_classes: Optional[int] = None, transforms: Optional[List[Any]] = None,
                 ann_dir: str = "SegmentationClass", palette: Optional[Sequence[Sequence[int]]] = None):
        if classes is None and num_classes is None:
            classes = VOC_CLASSES
        super().__init__(root, img_dir="JPEGImages", ann_dir=ann_dir, img_suffix=".jpg", ann_suffix=".png",
                         split_file=os.path.join("ImageSets", "Segmentation", f"{split}.txt"),
                         num_classes=num_classes, classes=classes, palette=palette, transforms=transforms)


@DATASETS.register()
class CityscapesSegDataset(SegFolderDataset):
    """Cityscapes: ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png`` when preprocessed by
    ``datasets/cityscapes_trainids.py``, else ``..._gtFine_labelIds.png`` mapped to the 19 trainIds on
    load (other ids -> 255)."""

    def __init__(self, root: str, split: str = "train", transforms: Optional[List[Any]] = None,
                 use_train_ids_files: Optional[bool] = None):
        img_dir, ann_dir = os.path.join("leftImg8bit", split), os.path.join("gtFine", split)
        if use_train_ids_files is None:
            use_train_ids_files = bool(glob.glob(os.path.join(root, ann_dir, "*", "*_labelTrainIds.png")))
        suffix = "_gtFine_labelTrainIds.png" if use_train_ids_files else "_gtFine_labelIds.png"
        self._map_ids = not use_train_ids_files
        super().__init__(root, img_dir=img_dir, ann_dir=ann_dir, img_suffix="_leftImg8bit.png", ann_suffix=suffix,
                         classes=CITYSCAPES_CLASSES, palette=CITYSCAPES_PALETTE, transforms=transforms)

    def load_mask(self, path: str) -> np.ndarray:
        m = read_mask(path)
        return cityscapes_lut()[m] if self._map_ids else m


@DATASETS.register()
class ADE20KSegDataset(SegFolderDataset):
    """ADE20K (SceneParsing) layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` with 0 = other (ignored) and 1..150 the classes."""

    def __init__(self, root: str, split: str = "training", num_classes: int = 150,
                 classes: Optional[Sequence[str]] = None, transforms: Optional[List[Any]] = None):
        super().__init__(root, img_dir=os.path.join("images", split), ann_dir=os.path.join("annotations", split),
                         img_suffix=".jpg", ann_suffix=".png", num_classes=num_classes, classes=classes,
                         reduce_zero_label=True, transforms=transforms)
