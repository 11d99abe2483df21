"""The one image reader of every dataset family, and the error for files that do not decode.

``read_image`` returns a uint8 RGB tensor [3, H, W] for any format OpenCV reads (JPEG, PNG, BMP,
TIFF, WebP ...), grayscale and RGBA files included; the EXIF orientation is ignored, because
annotation files (COCO, VOC) give coordinates in the stored pixel layout. ``read_mask`` returns a
label map as stored (palette or greyscale PNG: class indices). A file that exists but does not
decode raises ``CorruptImageError``; what happens then is the loader's one skip policy
(``data.skip_corrupt``, see ``torchcv.data.loading``).
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..utils.errors import CorruptImageError, DataError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

__all__ = ["IMG_EXTENSIONS", "CorruptImageError", "read_image", "read_mask"]


def read_image(path: str) -> torch.Tensor:
    """uint8 tensor [3, H, W] (RGB); raises CorruptImageError naming the file."""
    if not os.path.isfile(path):
        raise DataError(f"image file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if img is None:
        raise CorruptImageError(f"cannot decode image {path}: the file is corrupt or not an image")
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))


def read_mask(path: str) -> np.ndarray:
    """A label image as stored ([H, W] class indices); raises CorruptImageError / DataError."""
    if not os.path.isfile(path):
        raise DataError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise DataError(f"{path}: mask mode '{im.mode}' is not a class-index image (need a palette 'P' or "
                                f"greyscale 'L' PNG). Convert colour masks with datasets/voc_palette.py")
            return np.array(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptImageError(f"cannot decode mask {path}: {str(e).splitlines()[0][:160]}") from None
