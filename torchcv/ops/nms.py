"""nms / batched_nms with torchvision.ops semantics (compiled kernels when available)."""
import torch
from torch import Tensor

from . import _backend
from ._utils import check_float, check_same_device, check_tensor


def _check(boxes, scores, op: str) -> None:
    check_tensor("boxes", boxes, op)
    check_tensor("scores", scores, op)
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise ValueError(f"{op}: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    if scores.dim() != 1:
        raise ValueError(f"{op}: scores must have shape [N], got {tuple(scores.shape)}")
    if scores.size(0) != boxes.size(0):
        raise ValueError(f"{op}: boxes has {boxes.size(0)} rows but scores has {scores.size(0)} entries")
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


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (xyxy boxes, suppress IoU > iou_threshold).

    Returns int64 indices of the kept boxes, sorted by decreasing score
    (ties: lower index first). Same semantics as ``torchvision.ops.nms``.
    """
    _check(boxes, scores, "nms")
    if not _backend.use_compiled(boxes.device):
        import torchvision

        return torchvision.ops.nms(boxes, scores, iou_threshold)
    boxes, scores = _to_kernel_dtype(boxes, scores)
    return torch.ops.torchcv.nms(boxes, scores, float(iou_threshold))


def _batched_nms_coordinate_trick(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    # offset every class into its own disjoint region, then one nms call
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    boxes_for_nms = boxes + offsets[:, None]
    return nms(boxes_for_nms, scores, iou_threshold)


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


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently per category ``idxs``; same semantics as ``torchvision.ops.batched_nms``.

    Large inputs use the per-class path (native C++ on CPU), small ones the
    coordinate-offset trick, with the same size threshold as torchvision.
    """
    _check(boxes, scores, "batched_nms")
    check_tensor("idxs", idxs, "batched_nms")
    if idxs.dim() != 1 or idxs.size(0) != boxes.size(0):
        raise ValueError(f"batched_nms: idxs must have shape [{boxes.size(0)}], got {tuple(idxs.shape)}")
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
