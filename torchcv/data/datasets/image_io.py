"""Reading images from disk, with one policy for unreadable files shared by every dataset."""
from __future__ import annotations

import logging
import os

import torch
from torchvision.io import ImageReadMode, decode_image, read_file

logger = logging.getLogger("torchcv")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class CorruptImageError(RuntimeError):
    pass


def read_image(path: str, mode: ImageReadMode = ImageReadMode.RGB) -> torch.Tensor:
    """uint8 tensor [C, H, W]; raises CorruptImageError naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        return decode_image(read_file(path), mode=mode)
    except RuntimeError as e:
        raise CorruptImageError(f"cannot decode image {path}: {str(e).splitlines()[0][:160]}") from None


class SkipCorrupt:
    """Mixin: ``load_with_skip(index)`` returns ``self.load(index)``, or, for an unreadable image and
    ``skip_corrupt`` set, the next readable sample, logging each skipped file and a running count."""

    skip_corrupt: bool = True

    def load_with_skip(self, index: int):
        n = len(self)
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                return self.load(i)
            except CorruptImageError as e:
                if not self.skip_corrupt:
                    raise CorruptImageError(f"{e}. Remove or replace the file, or set data.skip_corrupt=true "
                                            f"to skip unreadable images.") from None
                bad = getattr(self, "_skipped", set())
                bad.add(i)
                self._skipped = bad
                logger.warning("skipping corrupt image (%d skipped so far in this process): %s", len(bad), e)
        raise CorruptImageError(f"every image of {type(self).__name__} is unreadable")
