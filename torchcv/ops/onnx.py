"""ONNX translations of our ops, for both exporters.

- ``torch.onnx.export(..., dynamo=False)`` (the legacy, tracing exporter; detection models go this
  way because their post-processing has data-dependent control flow): ``register_symbolics()``
  registers symbolic functions for ``torchcv::nms`` -> NonMaxSuppression, ``torchcv::roi_align`` ->
  RoiAlign (opset >= 16: ``aligned`` -> coordinate_transformation_mode half_pixel, else
  output_half_pixel; opset 11-15: boxes shifted by -0.5 / spatial_scale, as torchvision does) and
  ``torchcv::roi_pool`` -> MaxRoiPool.
- ``torch.onnx.export(..., dynamo=True)``: ``custom_translation_table()`` maps the same ops to
  onnxscript functions (needs the ``onnxscript`` package of the ``export`` extra).

``batched_nms`` needs no translation: under tracing and export it takes the coordinate-offset
path, one ``nms``. box_iou / box_area export as their tensor formula.
"""
from __future__ import annotations

import sys
from typing import Callable, Dict

import torch

from . import _backend

_REGISTERED = set()
_INT64 = 7  # onnx.TensorProto.INT64
_FLOAT = 1  # onnx.TensorProto.FLOAT


def _const(g, value):
    return g.op("Constant", value_t=torch.tensor(value))


def _unsqueeze0(g, x):
    if g.opset >= 13:
        return g.op("Unsqueeze", x, _const(g, [0]))
    return g.op("Unsqueeze", x, axes_i=[0])


def _nms_symbolic(g, boxes, scores, iou_threshold):
    from torch.onnx import symbolic_helper as sh

    thr = sh._maybe_get_const(iou_threshold, "f")
    boxes = g.op("Cast", _unsqueeze0(g, boxes), to_i=_FLOAT)                       # [1, N, 4]
    scores = g.op("Cast", _unsqueeze0(g, _unsqueeze0(g, scores)), to_i=_FLOAT)     # [1, 1, N]
    threshold = g.op("Constant", value_t=torch.tensor([float(thr)], dtype=torch.float32))
    selected = g.op("NonMaxSuppression", boxes, scores, _const(g, [sys.maxsize]), threshold)
    # rows are (batch, class, box index): keep the box index column -> [K]
    return g.op("Gather", selected, _const(g, 2), axis_i=1)


def _roi_align_symbolic(g, input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    from torch.onnx import symbolic_helper as sh

    scale = float(sh._maybe_get_const(spatial_scale, "f"))
    ph, pw = int(sh._maybe_get_const(pooled_height, "i")), int(sh._maybe_get_const(pooled_width, "i"))
    ratio = max(int(sh._maybe_get_const(sampling_ratio, "i")), 0)  # ONNX: 0 = adaptive
    aligned = bool(sh._maybe_get_const(aligned, "b"))
    batch_indices = g.op("Cast", g.op("Gather", rois, _const(g, 0), axis_i=1), to_i=_INT64)
    boxes = g.op("Gather", rois, _const(g, [1, 2, 3, 4]), axis_i=1)
    attrs = dict(spatial_scale_f=scale, output_height_i=ph, output_width_i=pw, sampling_ratio_i=ratio)
    if g.opset >= 16:
        attrs["coordinate_transformation_mode_s"] = "half_pixel" if aligned else "output_half_pixel"
    elif aligned:
        boxes = g.op("Sub", boxes, g.op("Constant", value_t=torch.tensor(0.5 / scale, dtype=torch.float32)))
    return g.op("RoiAlign", input, boxes, batch_indices, **attrs)


def _roi_pool_symbolic(g, input, rois, spatial_scale, pooled_height, pooled_width):
    from torch.onnx import symbolic_helper as sh

    ph, pw = int(sh._maybe_get_const(pooled_height, "i")), int(sh._maybe_get_const(pooled_width, "i"))
    out = g.op("MaxRoiPool", input, rois, pooled_shape_i=(ph, pw),
               spatial_scale_f=float(sh._maybe_get_const(spatial_scale, "f")))
    return out, None


def register_symbolics(opset: int = 11) -> None:
    """Register the legacy-exporter symbolics (once; from ``opset`` on)."""
    if _backend.backend() != "compiled" or opset in _REGISTERED:
        return  # the torchvision fallback records torchvision:: ops, which torchvision translates
    from torch.onnx import register_custom_op_symbolic

    register_custom_op_symbolic("torchcv::nms", _nms_symbolic, opset)
    register_custom_op_symbolic("torchcv::roi_align", _roi_align_symbolic, opset)
    register_custom_op_symbolic("torchcv::roi_pool", _roi_pool_symbolic, opset)
    _REGISTERED.add(opset)


def custom_translation_table() -> Dict[Callable, Callable]:
    """``{torch.ops.torchcv.<op>.default: onnxscript function}`` for ``torch.onnx.export(dynamo=True)``."""
    if _backend.backend() != "compiled":
        return {}
    from onnxscript import opset18 as op

    def nms(boxes, scores, iou_threshold: float):
        b = op.Cast(op.Unsqueeze(boxes, op.Constant(value_ints=[0])), to=_FLOAT)
        s = op.Cast(op.Unsqueeze(scores, op.Constant(value_ints=[0, 1])), to=_FLOAT)
        selected = op.NonMaxSuppression(b, s, op.Constant(value_ints=[sys.maxsize]),
                                        op.Constant(value_floats=[iou_threshold]))
        return op.Gather(selected, op.Constant(value_int=2), axis=1)

    def roi_align(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int,
                  sampling_ratio: int, aligned: bool):
        batch_indices = op.Cast(op.Gather(rois, op.Constant(value_int=0), axis=1), to=_INT64)
        boxes = op.Gather(rois, op.Constant(value_ints=[1, 2, 3, 4]), axis=1)
        return op.RoiAlign(input, boxes, batch_indices,
                           coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
                           spatial_scale=spatial_scale, output_height=pooled_height, output_width=pooled_width,
                           sampling_ratio=max(sampling_ratio, 0), mode="avg")

    def roi_pool(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
        out = op.MaxRoiPool(input, rois, pooled_shape=[pooled_height, pooled_width], spatial_scale=spatial_scale)
        # the second output (argmax) exists only for the backward; export has none
        return out, op.Cast(op.Shape(out), to=6)

    return {torch.ops.torchcv.nms.default: nms, torch.ops.torchcv.roi_align.default: roi_align,
            torch.ops.torchcv.roi_pool.default: roi_pool}
