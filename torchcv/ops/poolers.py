"""MultiScaleRoIAlign: FPN RoI pooling with torchvision's level mapping.

The whole pooling is one module-level function, so ``torch.fx.symbolic_trace`` keeps it as a single
call (``torch.fx.wrap``; torchvision gets the same by declaring its ops modules leaves) and
``torch.jit.script`` compiles it.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn, Tensor

from ._utils import convert_boxes_to_roi_format
from .boxes import box_area
from .roi_align import roi_align


class LevelMapper:
    """Maps each box to an FPN level (eq. 1 of the FPN paper).

    level = floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps), clamped to [k_min, k_max].
    """

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224, canonical_level: int = 4, eps: float = 1e-6):
        self.k_min = k_min
        self.k_max = k_max
        self.s0 = canonical_scale
        self.lvl0 = canonical_level
        self.eps = eps

    def __call__(self, boxlists: List[Tensor]) -> Tensor:
        s = torch.sqrt(torch.cat([box_area(b) for b in boxlists]))
        lvls = torch.floor(self.lvl0 + torch.log2(s / self.s0) + torch.tensor(self.eps, dtype=s.dtype))
        lvls = torch.clamp(lvls, min=self.k_min, max=self.k_max)
        return (lvls.to(torch.int64) - self.k_min).to(torch.int64)


def _infer_scale(feature: Tensor, original_size: List[int]) -> float:
    # power-of-two scale closest to feature_size / image_size (taken from the height)
    scales: List[float] = []
    for s1, s2 in zip(feature.shape[-2:], original_size):
        approx = float(s1) / float(s2)
        scales.append(2 ** float(torch.tensor(approx).log2().round().item()))
    return scales[0]


def _setup_scales(
    features: List[Tensor], image_shapes: List[Tuple[int, int]], canonical_scale: int, canonical_level: int
) -> Tuple[List[float], LevelMapper]:
    torch._assert(len(image_shapes) > 0, "MultiScaleRoIAlign: image_shapes must not be empty")
    max_x = 0
    max_y = 0
    for s in image_shapes:
        max_x = max(int(s[0]), max_x)
        max_y = max(int(s[1]), max_y)
    scales = [_infer_scale(f, [max_x, max_y]) for f in features]
    lvl_min = -torch.log2(torch.tensor(scales[0], dtype=torch.float32)).item()
    lvl_max = -torch.log2(torch.tensor(scales[-1], dtype=torch.float32)).item()
    return scales, LevelMapper(int(lvl_min), int(lvl_max), canonical_scale, canonical_level)


def _multiscale_roi_align(x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]],
                          featmap_names: List[str], output_size: List[int], sampling_ratio: int,
                          canonical_scale: int, canonical_level: int) -> Tensor:
    if not torch.jit.is_scripting():
        if not isinstance(boxes, (list, tuple)):
            raise TypeError("MultiScaleRoIAlign: boxes must be a list of Tensor[L_i, 4], one per image")
    feats: List[Tensor] = []
    for k, v in x.items():
        if k in featmap_names:
            feats.append(v)
    if len(feats) == 0:
        raise ValueError("MultiScaleRoIAlign: none of featmap_names found in the feature dict")
    scales, mapper = _setup_scales(feats, image_shapes, canonical_scale, canonical_level)
    ph, pw = output_size[0], output_size[1]
    rois = convert_boxes_to_roi_format(boxes)
    if len(feats) == 1:
        return roi_align(feats[0], rois, [ph, pw], spatial_scale=scales[0], sampling_ratio=sampling_ratio)

    levels = mapper(boxes)
    num_rois = rois.size(0)
    c = feats[0].shape[1]
    result = torch.zeros((num_rois, c, ph, pw), dtype=feats[0].dtype, device=feats[0].device)
    for level, feat in enumerate(feats):
        idx = torch.where(levels == level)[0]
        pooled = roi_align(feat, rois[idx], [ph, pw], spatial_scale=scales[level], sampling_ratio=sampling_ratio)
        result[idx] = pooled.to(result.dtype)
    return result


torch.fx.wrap("_multiscale_roi_align")


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign over several feature maps, each box pooled from the FPN level its size maps to.

    Args:
        featmap_names: keys of the feature dict to use (order follows the dict).
        output_size: int or (h, w).
        sampling_ratio: as in :func:`roi_align`.
        canonical_scale, canonical_level: FPN level-mapping constants (224, 4).

    forward(x: Dict[str, Tensor], boxes: List[Tensor[L_i, 4]], image_shapes: List[(h, w)]) -> Tensor[K, C, h, w]
    """

    def __init__(
        self,
        featmap_names: List[str],
        output_size,
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = list(featmap_names)
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(self, x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]]) -> Tensor:
        return _multiscale_roi_align(x, boxes, image_shapes, self.featmap_names,
                                     [self.output_size[0], self.output_size[1]], self.sampling_ratio,
                                     self.canonical_scale, self.canonical_level)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})"
        )
