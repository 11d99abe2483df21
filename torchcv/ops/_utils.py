"""Argument checking and RoI-format helpers shared by the ops."""
from typing import List, Tuple, Union

import torch
from torch import Tensor


class OpInputError(ValueError, RuntimeError, AssertionError):
    """A malformed argument (wrong shape, size mismatch, bad value).

    A ValueError for our callers, and also the RuntimeError / AssertionError that torchvision.ops
    raises for the same input, so code written against torchvision catches it unchanged.
    """


def check_tensor(name: str, t, op: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")


def check_float(name: str, t: Tensor, op: str) -> None:
    if not t.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating point tensor, got {t.dtype}")


def check_same_device(op: str, **tensors: Tensor) -> None:
    items = list(tensors.items())
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.device != t0.device:
            raise RuntimeError(
                f"{op}: {name} is on {t.device} but {name0} is on {t0.device}; all tensors must be on the same device"
            )


def pair(v, name: str = "output_size", op: str = "roi_align") -> Tuple[int, int]:
    if isinstance(v, int):
        out = (v, v)
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        out = (int(v[0]), int(v[1]))
    elif isinstance(v, torch.Size) and len(v) == 2:
        out = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if out[0] <= 0 or out[1] <= 0:
        raise OpInputError(f"{op}: {name} must be positive, got {out}")
    return out


def convert_boxes_to_roi_format(boxes: List[Tensor]) -> Tensor:
    """List of per-image [L_i, 4] boxes -> [K, 5] rois (batch index first). Scriptable."""
    boxes = list(boxes)
    ids: List[Tensor] = []
    for i, b in enumerate(boxes):
        ids.append(torch.full_like(b[:, :1], i))
    concat = boxes[0] if len(boxes) == 1 else torch.cat(boxes, dim=0)
    ids_t = ids[0] if len(ids) == 1 else torch.cat(ids, dim=0)
    return torch.cat([ids_t, concat], dim=1)


def check_rois(boxes: Union[Tensor, List[Tensor]], input: Tensor, op: str) -> Tensor:
    """Validate `boxes` (Tensor[K, 5] or list of Tensor[L, 4]) and return [K, 5] rois."""
    if isinstance(boxes, (list, tuple)):
        if len(boxes) == 0:
            raise OpInputError(f"{op}: boxes is an empty list; pass one Tensor[L, 4] per image")
        for i, b in enumerate(boxes):
            check_tensor(f"boxes[{i}]", b, op)
            if b.dim() != 2 or b.size(1) != 4:
                raise OpInputError(
                    f"{op}: boxes[{i}] must have shape [L, 4] (List[Tensor[L, 4]]), got {tuple(b.shape)}"
                )
            check_same_device(op, input=input, **{f"boxes[{i}]": b})
        rois = convert_boxes_to_roi_format(boxes)
    elif isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.size(1) != 5:
            raise OpInputError(
                f"{op}: boxes tensor must have shape [K, 5] (batch_index, x1, y1, x2, y2), got {tuple(boxes.shape)}"
            )
        check_same_device(op, input=input, boxes=boxes)
        rois = boxes
    else:
        raise TypeError(f"{op}: boxes must be a Tensor[K, 5] or a List[Tensor[L, 4]], got {type(boxes).__name__}")
    check_float("boxes", rois, op)
    return rois


def check_feature(input, op: str) -> None:
    check_tensor("input", input, op)
    if input.dim() != 4:
        raise OpInputError(f"{op}: input must be a 4d tensor [N, C, H, W], got shape {tuple(input.shape)}")
    check_float("input", input, op)


def check_dtypes_match(input: Tensor, rois: Tensor, op: str) -> None:
    if input.dtype != rois.dtype and not torch.is_autocast_enabled(input.device.type):
        raise TypeError(f"{op}: input ({input.dtype}) and boxes ({rois.dtype}) must have the same dtype")


def script_pair(output_size: List[int]) -> Tuple[int, int]:
    """(h, w) from a TorchScript BroadcastingList2[int] (an int arrives as [n, n])."""
    torch._assert(len(output_size) == 2, "output_size must be an int or a pair of ints")
    torch._assert(output_size[0] > 0 and output_size[1] > 0, "output_size must be positive")
    return output_size[0], output_size[1]


def script_rois(boxes: Union[Tensor, List[Tensor]]) -> Tensor:
    """Scriptable twin of check_rois: [K, 5] rois from a tensor or a list of [L, 4] boxes."""
    if isinstance(boxes, Tensor):
        torch._assert(boxes.dim() == 2 and boxes.size(1) == 5, "boxes tensor must have shape [K, 5]")
        return boxes
    for b in boxes:
        torch._assert(b.dim() == 2 and b.size(1) == 4, "boxes must be a list of Tensor[L, 4]")
    return convert_boxes_to_roi_format(boxes)
