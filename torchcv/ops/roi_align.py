"""RoIAlign (Mask R-CNN) with torchvision.ops semantics (compiled kernels when available)."""
from typing import List, Union

import torch
from torch import nn, Tensor

from . import _backend
from ._utils import check_dtypes_match, check_feature, check_rois, pair


def roi_align(
    input: Tensor,
    boxes: Union[Tensor, List[Tensor]],
    output_size,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Region-of-interest align with bilinear sampling and average pooling per bin.

    Args:
        input: Tensor[N, C, H, W] (NCHW or channels-last).
        boxes: Tensor[K, 5] (batch_index, x1, y1, x2, y2) or a list of Tensor[L_i, 4] per image.
        output_size: int or (height, width) of the pooled output.
        spatial_scale: factor mapping box coordinates to input coordinates.
        sampling_ratio: samples per bin along each axis; <= 0 means adaptive (ceil(roi_size / output_size)).
        aligned: shift boxes by -0.5 pixel (Detectron2 convention).
    Returns:
        Tensor[K, C, output_size[0], output_size[1]] in the dtype of ``input``.
    """
    check_feature(input, "roi_align")
    rois = check_rois(boxes, input, "roi_align")
    ph, pw = pair(output_size, op="roi_align")
    if not _backend.use_compiled(input.device):
        import torchvision

        return torchvision.ops.roi_align(input, rois, (ph, pw), spatial_scale, sampling_ratio, aligned)
    check_dtypes_match(input, rois, "roi_align")
    return torch.ops.torchcv.roi_align(input, rois, float(spatial_scale), ph, pw, int(sampling_ratio), bool(aligned))


class RoIAlign(nn.Module):
    """See :func:`roi_align`."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int, aligned: bool = False):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )
