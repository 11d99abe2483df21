"""torchcv.ops: detection operators with torchvision.ops semantics.

Backed by our C++/CUDA kernels (``torchcv._C``, built with ``bash extensions/make.sh``);
without the build they fall back to torchvision.ops (one warning). ``backend()``
tells which is in use; ``TORCHCV_OPS_BACKEND=torchvision`` forces the fallback.
"""
from ._backend import backend, compiled_with_cuda
from .boxes import box_area, box_iou
from .nms import batched_nms, nms
from .poolers import MultiScaleRoIAlign
from .roi_align import RoIAlign, roi_align
from .roi_pool import RoIPool, roi_pool

__all__ = [
    "backend",
    "compiled_with_cuda",
    "nms",
    "batched_nms",
    "roi_align",
    "RoIAlign",
    "roi_pool",
    "RoIPool",
    "box_iou",
    "box_area",
    "MultiScaleRoIAlign",
]
