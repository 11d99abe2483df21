"""Detection transforms missing from torchvision.transforms.v2 (all of v2 is registered already:
``RandomHorizontalFlip``, ``ColorJitter``, ``RandomPhotometricDistort``, ``RandomIoUCrop`` ... move
``BoundingBoxes`` and ``Mask`` with the image)."""
from __future__ import annotations

import random
from typing import Any, Dict, List, Sequence, Union

from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..registry import TRANSFORMS


@TRANSFORMS.register()
class KeepRatioResize(v2.Transform):
    """Scale so the short side is ``min_size`` (one picked at random when a list: multi-scale
    training) unless the long side would pass ``max_size``; boxes and masks follow."""

    def __init__(self, min_size: Union[int, Sequence[int]] = 800, max_size: int = 1333, antialias: bool = True):
        super().__init__()
        self.min_sizes: List[int] = list(min_size) if isinstance(min_size, (list, tuple)) else [int(min_size)]
        self.max_size = max_size
        self.antialias = antialias

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        short = random.choice(self.min_sizes)
        scale = min(short / min(h, w), self.max_size / max(h, w))
        return {"size": [max(1, round(h * scale)), max(1, round(w * scale))]}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=self.antialias)
