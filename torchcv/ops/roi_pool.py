"""RoIPool (Fast R-CNN) with torchvision.ops semantics (compiled kernels when available).

Eager, scripted and FX-traced calls behave as in :mod:`torchcv.ops.roi_align`.
"""
from typing import List, Union

import torch
from torch import nn, Tensor
from torch.jit.annotations import BroadcastingList2

from . import _backend
from ._utils import check_dtypes_match, check_feature, check_rois, pair, script_pair, script_rois

compiled_serves = _backend.compiled_serves

# defined per backend: TorchScript must not even see torchcv:: ops that were never registered
if _backend.backend() == "compiled":
    def _kernel(input: Tensor, rois: Tensor, spatial_scale: float, ph: int, pw: int) -> Tensor:
        if compiled_serves(input.device):
            return torch.ops.torchcv.roi_pool(input, rois, spatial_scale, ph, pw)[0]
        return torch.ops.torchvision.roi_pool(input, rois, spatial_scale, ph, pw)[0]
else:
    def _kernel(input: Tensor, rois: Tensor, spatial_scale: float, ph: int, pw: int) -> Tensor:
        return torch.ops.torchvision.roi_pool(input, rois, spatial_scale, ph, pw)[0]


@torch.jit.unused
def _roi_pool_eager(input: Tensor, boxes: Union[Tensor, List[Tensor]], output_size: BroadcastingList2[int],
                    spatial_scale: float) -> Tensor:
    check_feature(input, "roi_pool")
    rois = check_rois(boxes, input, "roi_pool")
    ph, pw = pair(output_size, op="roi_pool")
    if not _backend.use_compiled(input.device):
        import torchvision

        return torchvision.ops.roi_pool(input, rois, (ph, pw), spatial_scale)
    check_dtypes_match(input, rois, "roi_pool")
    output, _ = torch.ops.torchcv.roi_pool(input, rois, float(spatial_scale), ph, pw)
    return output


def roi_pool(
    input: Tensor,
    boxes: Union[Tensor, List[Tensor]],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Region-of-interest max pooling over quantised bins.

    Args:
        input: Tensor[N, C, H, W] (NCHW or channels-last; the output is contiguous either way).
        boxes: Tensor[K, 5] (batch_index, x1, y1, x2, y2) or a list of Tensor[L_i, 4] per image.
        output_size: int or (height, width).
        spatial_scale: factor mapping box coordinates to input coordinates.
    Returns:
        Tensor[K, C, output_size[0], output_size[1]].
    """
    if not torch.jit.is_scripting():
        return _roi_pool_eager(input, boxes, output_size, spatial_scale)
    ph, pw = script_pair(output_size)
    return _kernel(input, script_rois(boxes), spatial_scale, ph, pw)


torch.fx.wrap("roi_pool")


class RoIPool(nn.Module):
    """See :func:`roi_pool`."""

    def __init__(self, output_size: BroadcastingList2[int], spatial_scale: float):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale})"
