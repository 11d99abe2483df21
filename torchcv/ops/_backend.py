"""Loads the compiled ops (torchcv._C) or falls back to torchvision.ops.

backend() -> "compiled" | "torchvision"

TORCHCV_OPS_BACKEND=torchvision forces the fallback (A/B comparisons);
TORCHCV_OPS_BACKEND=compiled makes a missing build an ImportError.
"""
import importlib
import os
import warnings
from typing import Optional

import torch

_BACKEND: str = "torchvision"
_C = None
_LOAD_ERROR: Optional[str] = None

BUILD_HINT = "bash extensions/make.sh"


def _register_fakes() -> None:
    """Shape-only (meta/fake) kernels so the ops work under torch.compile."""
    lib = "torchcv::"

    def _cl(t: torch.Tensor) -> bool:
        # same rule as torchcv::is_channels_last in C++
        return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)

    def _fmt(t):
        return torch.channels_last if _cl(t) else torch.contiguous_format

    @torch.library.register_fake(lib + "nms")
    def _nms_fake(dets, scores, iou_threshold):
        torch._check(dets.dim() == 2, lambda: f"nms: boxes should be a 2d tensor, got {dets.dim()}D")
        torch._check(dets.size(1) == 4, lambda: "nms: boxes should have 4 elements in dimension 1")
        torch._check(scores.dim() == 1, lambda: "nms: scores should be a 1d tensor")
        torch._check(dets.size(0) == scores.size(0), lambda: "nms: boxes and scores size mismatch")
        n = torch.library.get_ctx().new_dynamic_size()
        return dets.new_empty((n,), dtype=torch.int64)

    @torch.library.register_fake(lib + "batched_nms")
    def _bnms_fake(boxes, scores, idxs, iou_threshold):
        torch._check(boxes.dim() == 2 and boxes.size(1) == 4, lambda: "batched_nms: boxes must be [N, 4]")
        n = torch.library.get_ctx().new_dynamic_size()
        return boxes.new_empty((n,), dtype=torch.int64)

    @torch.library.register_fake(lib + "roi_align")
    def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
        torch._check(rois.dim() == 2 and rois.size(1) == 5, lambda: "roi_align: rois must have shape [K, 5]")
        torch._check(input.dtype == rois.dtype, lambda: "roi_align: input and rois must have the same dtype")
        # contiguous whatever the input layout, as the kernels (and torchvision) return it
        return input.new_empty((rois.size(0), input.size(1), pooled_height, pooled_width))

    @torch.library.register_fake(lib + "_roi_align_backward")
    def _roi_align_bwd_fake(
        grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio, aligned
    ):
        return grad.new_empty((batch_size, channels, height, width)).contiguous(memory_format=_fmt(grad))

    @torch.library.register_fake(lib + "roi_pool")
    def _roi_pool_fake(input, rois, spatial_scale, pooled_height, pooled_width):
        torch._check(rois.dim() == 2 and rois.size(1) == 5, lambda: "roi_pool: rois must have shape [K, 5]")
        torch._check(input.dtype == rois.dtype, lambda: "roi_pool: input and rois must have the same dtype")
        shape = (rois.size(0), input.size(1), pooled_height, pooled_width)
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)

    @torch.library.register_fake(lib + "_roi_pool_backward")
    def _roi_pool_bwd_fake(
        grad, rois, argmax, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width
    ):
        return grad.new_empty((batch_size, channels, height, width)).contiguous(memory_format=_fmt(grad))

    @torch.library.register_fake(lib + "box_area")
    def _box_area_fake(boxes):
        return boxes.new_empty(boxes.shape[:-1])

    @torch.library.register_fake(lib + "box_iou")
    def _box_iou_fake(boxes1, boxes2):
        return boxes1.new_empty((boxes1.size(0), boxes2.size(0)))


def _load() -> None:
    global _BACKEND, _C, _LOAD_ERROR
    choice = os.environ.get("TORCHCV_OPS_BACKEND", "").strip().lower()
    if choice == "torchvision":
        _BACKEND = "torchvision"
        return
    try:
        _C = importlib.import_module("torchcv._C")
        _register_fakes()
        _BACKEND = "compiled"
    except (ImportError, OSError) as e:  # not built / built for another torch
        _LOAD_ERROR = f"{type(e).__name__}: {e}"
        if choice == "compiled":
            raise ImportError(
                f"TORCHCV_OPS_BACKEND=compiled but torchcv._C could not be loaded ({_LOAD_ERROR}). "
                f"Build it with `{BUILD_HINT}`."
            ) from e
        _BACKEND = "torchvision"
        warnings.warn(
            "torchcv.ops: the compiled operators (torchcv._C) are not available "
            f"({_LOAD_ERROR}); falling back to torchvision.ops, which is slower on CPU. "
            f"Build them with `{BUILD_HINT}`.",
            RuntimeWarning,
            stacklevel=3,
        )


_load()


def backend() -> str:
    """'compiled' when torchcv._C is in use, 'torchvision' for the fallback."""
    return _BACKEND


def compiled_with_cuda() -> bool:
    return _C is not None and bool(_C.with_cuda())


def use_compiled(device: torch.device) -> bool:
    """Whether the compiled kernels serve tensors on `device` (else torchvision is used)."""
    if _BACKEND != "compiled":
        return False
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return compiled_with_cuda()
    return False


# For TorchScript, which reads no Python globals: which device types the compiled kernels serve,
# decided once at import as three small functions.
if _BACKEND != "compiled":
    def compiled_serves(device: torch.device) -> bool:
        return False
elif compiled_with_cuda():
    def compiled_serves(device: torch.device) -> bool:
        return device.type == "cpu" or device.type == "cuda"
else:
    def compiled_serves(device: torch.device) -> bool:
        return device.type == "cpu"
