"""nms / batched_nms with torchvision.ops semantics (compiled kernels when available).

Eager calls go through argument checks that name the argument; ``torch.jit.script`` compiles the
lean path below ``torch.jit.is_scripting()``; tracing and ``torch.export`` record
``torch.ops.torchcv.nms`` (ONNX: NonMaxSuppression, see ops/onnx.py). Quantized boxes and scores
are dequantized first, as torchvision's quantized kernel compares the dequantized values.
"""
from typing import Tuple

import torch
from torch import Tensor

from . import _backend
from ._utils import OpInputError, check_float, check_same_device, check_tensor

compiled_serves = _backend.compiled_serves


def _check(boxes, scores, op: str) -> None:
    check_tensor("boxes", boxes, op)
    check_tensor("scores", scores, op)
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise OpInputError(f"{op}: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    if scores.dim() != 1:
        raise OpInputError(f"{op}: scores must have shape [N], got {tuple(scores.shape)}")
    if scores.size(0) != boxes.size(0):
        raise OpInputError(f"{op}: boxes has {boxes.size(0)} rows but scores has {scores.size(0)} entries")
    check_float("boxes", boxes, op)
    check_float("scores", scores, op)
    check_same_device(op, boxes=boxes, scores=scores)


def _to_kernel_dtype(boxes: Tensor, scores: Tensor):
    # the CPU kernels work in float32/float64; half inputs are promoted
    if boxes.device.type == "cpu" and (boxes.dtype not in (torch.float32, torch.float64) or boxes.dtype != scores.dtype):
        dt = torch.promote_types(torch.promote_types(boxes.dtype, scores.dtype), torch.float32)
        return boxes.to(dt), scores.to(dt)
    if boxes.dtype != scores.dtype:
        dt = torch.promote_types(boxes.dtype, scores.dtype)
        return boxes.to(dt), scores.to(dt)
    return boxes, scores


def _script_kernel_dtype(boxes: Tensor, scores: Tensor) -> Tuple[Tensor, Tensor]:
    # scriptable _to_kernel_dtype for the CPU kernels: float32/float64 pairs pass, others go float32
    if boxes.dtype == scores.dtype and (boxes.dtype == torch.float32 or boxes.dtype == torch.float64):
        return boxes, scores
    return boxes.float(), scores.float()


# defined per backend: TorchScript must not even see torchcv:: ops that were never registered
if _backend.backend() == "compiled":
    def _script_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
        if compiled_serves(boxes.device):
            if boxes.device.type == "cpu":
                boxes, scores = _script_kernel_dtype(boxes, scores)
            return torch.ops.torchcv.nms(boxes, scores, iou_threshold)
        return torch.ops.torchvision.nms(boxes, scores, iou_threshold)

    def _script_batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
        if boxes.numel() > 4000 and boxes.device.type == "cpu":
            b, s = _script_kernel_dtype(boxes, scores)
            return torch.ops.torchcv.batched_nms(b, s, idxs, iou_threshold)
        return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)
else:
    def _script_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
        return torch.ops.torchvision.nms(boxes, scores, iou_threshold)

    def _script_batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
        return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)


@torch.jit.unused
def _nms_eager(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    if isinstance(boxes, Tensor) and boxes.is_quantized:
        boxes = boxes.dequantize()
    if isinstance(scores, Tensor) and scores.is_quantized:
        scores = scores.dequantize()
    _check(boxes, scores, "nms")
    if not _backend.use_compiled(boxes.device):
        import torchvision

        return torchvision.ops.nms(boxes, scores, iou_threshold)
    boxes, scores = _to_kernel_dtype(boxes, scores)
    return torch.ops.torchcv.nms(boxes, scores, float(iou_threshold))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (xyxy boxes, suppress IoU > iou_threshold).

    Returns int64 indices of the kept boxes, sorted by decreasing score
    (ties: lower index first). Same semantics as ``torchvision.ops.nms``.
    """
    if not torch.jit.is_scripting():
        return _nms_eager(boxes, scores, iou_threshold)
    if boxes.is_quantized:
        boxes = boxes.dequantize()
    if scores.is_quantized:
        scores = scores.dequantize()
    torch._assert(boxes.dim() == 2 and boxes.size(1) == 4, "nms: boxes must have shape [N, 4]")
    torch._assert(scores.dim() == 1 and scores.size(0) == boxes.size(0), "nms: scores must have shape [N]")
    return _script_nms(boxes, scores, iou_threshold)


def _batched_nms_coordinate_trick(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    # offset every class into its own disjoint region, then one nms call
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    boxes_for_nms = boxes + offsets[:, None]
    return nms(boxes_for_nms, scores, iou_threshold)


@torch.jit.unused
def _batched_nms_per_class(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    # independent nms per class, merged by decreasing score
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.device.type == "cpu" and _backend.use_compiled(boxes.device):
        b, s = _to_kernel_dtype(boxes, scores)
        return torch.ops.torchcv.batched_nms(b, s, idxs, float(iou_threshold))
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for class_id in torch.unique(idxs):
        curr = torch.where(idxs == class_id)[0]
        keep_mask[curr[nms(boxes[curr], scores[curr], iou_threshold)]] = True
    keep = torch.where(keep_mask)[0]
    return keep[scores[keep].sort(descending=True, stable=True)[1]]


def _per_class_threshold(device: torch.device) -> int:
    # same switch-over points as torchvision.ops.batched_nms
    return 4000 if device.type == "cpu" else 100_000


@torch.jit.unused
def _batched_nms_eager(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    if isinstance(boxes, Tensor) and boxes.numel() == 0:
        # nothing to suppress: torchvision answers an empty result whatever the other arguments
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    _check(boxes, scores, "batched_nms")
    check_tensor("idxs", idxs, "batched_nms")
    if idxs.dim() != 1 or idxs.size(0) != boxes.size(0):
        raise OpInputError(f"batched_nms: idxs must have shape [{boxes.size(0)}], got {tuple(idxs.shape)}")
    if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
        raise TypeError(f"batched_nms: idxs must be an integer tensor, got {idxs.dtype}")
    check_same_device("batched_nms", boxes=boxes, idxs=idxs)
    if not _backend.use_compiled(boxes.device):
        import torchvision

        return torchvision.ops.batched_nms(boxes, scores, idxs, iou_threshold)
    if boxes.numel() > _per_class_threshold(boxes.device) and not torch.jit.is_tracing():
        if boxes.device.type == "cpu" or not torch.compiler.is_compiling():
            return _batched_nms_per_class(boxes, scores, idxs, iou_threshold)
    return _batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently per category ``idxs``; same semantics as ``torchvision.ops.batched_nms``.

    Large inputs use the per-class path (native C++ on CPU), small ones the
    coordinate-offset trick, with the same size threshold as torchvision.
    """
    if not torch.jit.is_scripting():
        return _batched_nms_eager(boxes, scores, idxs, iou_threshold)
    return _script_batched_nms(boxes, scores, idxs, iou_threshold)


# torch.fx.symbolic_trace records these as single calls (their argument checks branch on values)
torch.fx.wrap("nms")
torch.fx.wrap("batched_nms")
