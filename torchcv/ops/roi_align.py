"""RoIAlign (Mask R-CNN) with torchvision.ops semantics (compiled kernels when available).

Eager calls check their arguments and name the bad one; ``torch.jit.script`` compiles the lean
path below ``torch.jit.is_scripting()``; ``torch.fx.symbolic_trace`` keeps ``roi_align`` as one
call (``torch.fx.wrap``), as torchvision does. Quantized inputs are computed on their dequantized
values and requantized with the input's scale and zero point (one image per batch, as torchvision).
"""
from typing import List, Union

import torch
from torch import nn, Tensor
from torch.jit.annotations import BroadcastingList2

from . import _backend
from ._utils import convert_boxes_to_roi_format, check_dtypes_match, check_feature, check_rois, pair, script_pair, script_rois

compiled_serves = _backend.compiled_serves

# defined per backend: TorchScript must not even see torchcv:: ops that were never registered
if _backend.backend() == "compiled":
    def _kernel(input: Tensor, rois: Tensor, spatial_scale: float, ph: int, pw: int, sampling_ratio: int,
                aligned: bool) -> Tensor:
        if compiled_serves(input.device):
            return torch.ops.torchcv.roi_align(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)
        return torch.ops.torchvision.roi_align(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)
else:
    def _kernel(input: Tensor, rois: Tensor, spatial_scale: float, ph: int, pw: int, sampling_ratio: int,
                aligned: bool) -> Tensor:
        return torch.ops.torchvision.roi_align(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)


def _quantized(input: Tensor, rois: Tensor, spatial_scale: float, ph: int, pw: int, sampling_ratio: int,
               aligned: bool) -> Tensor:
    if input.size(0) != 1:
        raise RuntimeError("roi_align: Only one image per batch is allowed when quantized tensors are passed as "
                           "input (as in torchvision); dequantize the input for batches")
    r = rois.dequantize() if rois.is_quantized else rois
    x = input.dequantize()
    out = _kernel(x, r.to(x.dtype), spatial_scale, ph, pw, sampling_ratio, aligned)
    return torch.quantize_per_tensor(out, input.q_scale(), input.q_zero_point(), input.dtype)


@torch.jit.unused
def _roi_align_eager(input: Tensor, boxes: Union[Tensor, List[Tensor]], output_size: BroadcastingList2[int],
                     spatial_scale: float, sampling_ratio: int, aligned: bool) -> Tensor:
    ph, pw = pair(output_size, op="roi_align")
    if isinstance(input, Tensor) and input.is_quantized:
        rois = boxes if isinstance(boxes, Tensor) else convert_boxes_to_roi_format(
            [b.dequantize() if b.is_quantized else b for b in boxes])
        return _quantized(input, rois, float(spatial_scale), ph, pw, int(sampling_ratio), bool(aligned))
    check_feature(input, "roi_align")
    rois = check_rois(boxes, input, "roi_align")
    if not _backend.use_compiled(input.device):
        import torchvision

        return torchvision.ops.roi_align(input, rois, (ph, pw), spatial_scale, sampling_ratio, aligned)
    check_dtypes_match(input, rois, "roi_align")
    return torch.ops.torchcv.roi_align(input, rois, float(spatial_scale), ph, pw, int(sampling_ratio), bool(aligned))


def roi_align(
    input: Tensor,
    boxes: Union[Tensor, List[Tensor]],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Region-of-interest align with bilinear sampling and average pooling per bin.

    Args:
        input: Tensor[N, C, H, W] (NCHW or channels-last; the output is contiguous either way).
        boxes: Tensor[K, 5] (batch_index, x1, y1, x2, y2) or a list of Tensor[L_i, 4] per image.
        output_size: int or (height, width) of the pooled output.
        spatial_scale: factor mapping box coordinates to input coordinates.
        sampling_ratio: samples per bin along each axis; <= 0 means adaptive (ceil(roi_size / output_size)).
        aligned: shift boxes by -0.5 pixel (Detectron2 convention).
    Returns:
        Tensor[K, C, output_size[0], output_size[1]] in the dtype of ``input``.
    """
    if not torch.jit.is_scripting():
        return _roi_align_eager(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)
    ph, pw = script_pair(output_size)
    rois = script_rois(boxes)
    if input.is_quantized:
        return _quantized(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)
    return _kernel(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)


torch.fx.wrap("roi_align")


class RoIAlign(nn.Module):
    """See :func:`roi_align`."""

    def __init__(self, output_size: BroadcastingList2[int], spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False):
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
