"""box_area / box_iou with torchvision.ops semantics.

The compiled kernels serve the common case (xyxy, float32/float64, CPU, no
autograd); everything else uses the equivalent tensor formula, so results and
gradients are always available. Scripted and traced calls use the formula.
"""
from typing import Tuple

import torch
from torch import Tensor

from . import _backend
from ._utils import OpInputError, check_tensor

_FMTS = ("xyxy", "xywh", "cxcywh")


def _upcast(t: Tensor) -> Tensor:
    # protect against overflow in products: half -> float, small ints -> int32
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


@torch.jit.unused
def _fast_ok(t0: Tensor, t1: Tensor) -> bool:
    if t0.device.type != "cpu" or not _backend.use_compiled(t0.device):
        return False
    if torch.jit.is_tracing():
        return False
    for t in (t0, t1):
        if t.dtype not in (torch.float32, torch.float64) or t.dtype != t0.dtype:
            return False
        if t.requires_grad and torch.is_grad_enabled():
            return False
    return True


@torch.jit.unused
def _check_boxes(name: str, b: Tensor, op: str, fmt: str) -> None:
    check_tensor(name, b, op)
    if b.dim() < 1 or b.size(-1) != 4:
        raise OpInputError(f"{op}: {name} must have shape [..., 4], got {tuple(b.shape)}")
    if fmt not in _FMTS:
        raise OpInputError(f"{op}: unsupported box format {fmt!r}; expected one of {_FMTS}")


def _area(boxes: Tensor, fmt: str) -> Tensor:
    boxes = _upcast(boxes)
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of boxes [..., 4] (no +1): (x2 - x1) * (y2 - y1) for xyxy."""
    if not torch.jit.is_scripting():
        _check_boxes("boxes", boxes, "box_area", fmt)
        if fmt == "xyxy" and _fast_ok(boxes, boxes):
            return torch.ops.torchcv.box_area(boxes)
    return _area(boxes, fmt)


def _corners(b: Tensor, fmt: str) -> Tuple[Tensor, Tensor]:
    if fmt == "xyxy":
        return b[..., :2], b[..., 2:]
    if fmt == "xywh":
        return b[..., :2], b[..., :2] + b[..., 2:]
    return b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2


def _iou(boxes1: Tensor, boxes2: Tensor, fmt: str) -> Tensor:
    area1 = _area(boxes1, fmt)
    area2 = _area(boxes2, fmt)
    lt1, rb1 = _corners(boxes1, fmt)
    lt2, rb2 = _corners(boxes2, fmt)
    lt = torch.max(lt1[..., :, None, :], lt2[..., None, :, :])
    rb = torch.min(rb1[..., :, None, :], rb2[..., None, :, :])
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[..., None] + area2[..., None, :] - inter
    return inter / union


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Pairwise IoU: boxes1 [..., N, 4], boxes2 [..., M, 4] -> [..., N, M]."""
    if not torch.jit.is_scripting():
        _check_boxes("boxes1", boxes1, "box_iou", fmt)
        _check_boxes("boxes2", boxes2, "box_iou", fmt)
        if boxes1.device != boxes2.device:
            raise RuntimeError(f"box_iou: boxes1 is on {boxes1.device} but boxes2 is on {boxes2.device}")
        if fmt == "xyxy" and boxes1.dim() == 2 and boxes2.dim() == 2 and _fast_ok(boxes1, boxes2):
            return torch.ops.torchcv.box_iou(boxes1, boxes2)
    return _iou(boxes1, boxes2, fmt)
