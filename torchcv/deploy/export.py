"""Export a model with a fixed input/output contract per task.

| task | input | outputs |
|---|---|---|
| classification | ``images`` float [B, 3, H, W] (normalised as the eval transforms do) | ``logits`` [B, C] |
| segmentation | ``images`` float [B, 3, H, W] | ``logits`` [B, C, H, W] |
| detection | ``image`` float [3, H, W] in [0, 1] (one image; the model normalises and resizes) | ``boxes`` [N, 4] xyxy, ``labels`` [N], ``scores`` [N], then ``masks`` [N, 1, H, W] or ``keypoints`` [N, K, 3], ``keypoints_scores`` [N, K] when the model predicts them |

Which exporter: classification and segmentation use the modern exporter (``torch.export`` based,
``dynamo=True``; ``--dynamic`` makes batch, height and width symbolic). Detection uses the legacy
tracing exporter (opset 17, our ops through ``torchcv.ops.onnx``), because the post-processing has
data-dependent control flow (how many boxes survive NMS, empty-result branches) that ``torch.export``
cannot capture. Under tracing the detector keeps its size arithmetic in the graph (resize scale,
padding, clipping, top-k counts, mask canvas), so the exported model takes any image size, and the
number of detections N is dynamic.
Any detector whose eval forward takes a list of images and returns a list of dicts with those keys
exports through the same wrapper: nothing here names a model class.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..utils.errors import TorchCVError

FORMATS = ("onnx", "torchscript", "export")
DETECTION_KEYS = ("boxes", "labels", "scores", "masks", "keypoints", "keypoints_scores")
LEGACY_OPSET = 17


class ExportError(TorchCVError, RuntimeError):
    """The model cannot be exported: the message names the module that failed and why."""


class DetectionExportWrapper(nn.Module):
    """One image in, the detection contract's tensors out (in DETECTION_KEYS order)."""

    def __init__(self, detector: nn.Module, keys: Sequence[str]):
        super().__init__()
        self.detector = detector
        self.keys = list(keys)

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        result = self.detector([image])[0]
        return tuple(result[k] for k in self.keys)


def detection_keys(model: nn.Module, image: Tensor) -> List[str]:
    """The contract keys this detector returns (one probe run)."""
    with torch.no_grad():
        result = model([image])[0]
    if not isinstance(result, dict) or not all(k in result for k in DETECTION_KEYS[:3]):
        raise ExportError(f"{type(model).__name__} does not follow the detection output contract: eval mode must "
                          f"return a list of dicts with boxes, labels, scores (got {type(result).__name__} "
                          f"{sorted(result) if isinstance(result, dict) else ''})")
    return [k for k in DETECTION_KEYS if k in result]


def contract(task: str, model: nn.Module, example: Tensor) -> Tuple[nn.Module, List[str], List[str]]:
    """(module to export, input names, output names) for ``task``."""
    if task == "detection":
        keys = detection_keys(model, example)
        return DetectionExportWrapper(model, keys).eval(), ["image"], keys
    if task in ("classification", "segmentation", "video"):
        return model, ["images"], ["logits"]
    raise ExportError(f"no export contract for task '{task}' (classification, segmentation, detection)")


@contextlib.contextmanager
def _module_trail(model: nn.Module):
    """Keeps the names of the modules being run, so a failure names the innermost one."""
    stack: List[str] = []
    names = {m: n or type(model).__name__ for n, m in model.named_modules()}
    def enter(mod, args):
        stack.append(names[mod])

    def leave(mod, args, out):  # returns None: a forward hook's return value would replace the output
        if stack:
            stack.pop()

    handles = []
    for m in names:
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    trail = {"stack": stack}
    try:
        yield trail
    finally:
        for h in handles:
            h.remove()


def _failure(model: nn.Module, trail, fmt: str, e: BaseException) -> ExportError:
    where = trail["stack"][-1] if trail["stack"] else type(model).__name__
    cls = type(dict(model.named_modules()).get(where, model)).__name__ if trail["stack"] else type(model).__name__
    reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    return ExportError(f"cannot export to {fmt}: module '{where}' ({cls}) failed: {type(e).__name__}: {reason}")


def export(model: nn.Module, task: str, fmt: str, example: Tensor, out: str, dynamic: bool = False) -> str:
    """Write ``model`` (eval mode) for ``task`` as ``fmt`` to ``out``; returns ``out``."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    model = model.eval()
    module, inputs, outputs = contract(task, model, example)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with _module_trail(module) as trail, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python values are expected here
        try:
            if fmt == "onnx":
                _export_onnx(module, task, example, out, inputs, outputs, dynamic)
            elif fmt == "torchscript":
                traced = torch.jit.trace(module, (example,), check_trace=False, strict=False)
                torch.jit.save(traced, out)
            else:
                program = torch.export.export(module, (example,), dynamic_shapes=_dynamic_shapes(task, example, dynamic))
                torch.export.save(program, out)
        except ExportError:
            raise
        except Exception as e:  # the exporters raise many types; all mean "this forward does not export"
            raise _failure(module, trail, fmt, e) from e
    return out


def _dynamic_shapes(task: str, example: Tensor, dynamic: bool):
    if not dynamic or task == "detection":
        return None
    # DYNAMIC: torch.export works out the constraints (e.g. sizes a stride-32 network accepts)
    return ({k: torch.export.Dim.DYNAMIC for k in (0, 2, 3) if k < example.dim()},)


def _export_onnx(module, task, example, out, inputs, outputs, dynamic):
    if task == "detection":
        from ..ops.onnx import register_symbolics

        register_symbolics(LEGACY_OPSET)
        axes = {name: [0] for name in outputs}
        axes["image"] = [1, 2]  # the model resizes internally: any input size
        if "masks" in outputs:
            axes["masks"] = [0, 2, 3]
        torch.onnx.export(module, (example,), out, dynamo=False, opset_version=LEGACY_OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
        return
    from ..ops.onnx import custom_translation_table

    program = torch.onnx.export(module, (example,), None, dynamo=True, input_names=inputs, output_names=outputs,
                                dynamic_shapes=_dynamic_shapes(task, example, dynamic),
                                custom_translation_table=custom_translation_table(), verbose=False)
    program.save(out)


# ---- checking an exported file against eager --------------------------------------------------------
def onnxruntime_outputs(path: str, example: Tensor) -> List[Tensor]:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [torch.from_numpy(o) for o in session.run(None, {name: example.numpy()})]


def eager_outputs(task: str, model: nn.Module, example: Tensor, keys: Optional[Sequence[str]] = None) -> List[Tensor]:
    with torch.no_grad():
        if task == "detection":
            r = model([example])[0]
            return [r[k] for k in (keys or [k for k in DETECTION_KEYS if k in r])]
        return [model(example)]


def detections_as_set(outs: Sequence[Tensor]) -> List[Tensor]:
    """Detections sorted by (label, score, box) so equal-score ties compare in any order."""
    boxes, labels, scores = outs[0], outs[1], outs[2]
    if boxes.numel() == 0:
        return list(outs)
    key = torch.stack([labels.double(), -scores.double(), boxes[:, 0].double(), boxes[:, 1].double()], 1)
    order = sorted(range(len(labels)), key=lambda i: tuple(key[i].tolist()))
    idx = torch.tensor(order, dtype=torch.long)
    return [o[idx] for o in outs]


def compare(task: str, ours: Sequence[Tensor], ref: Sequence[Tensor], atol: float = 1e-4, rtol: float = 1e-4) -> Dict[str, float]:
    """Max abs difference per output; raises AssertionError when outside tolerance."""
    if task == "detection":
        ours, ref = detections_as_set(ours), detections_as_set(ref)
    diffs = {}
    for i, (a, b) in enumerate(zip(ours, ref)):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        assert a.shape == b.shape, f"output {i}: shape {tuple(a.shape)} vs eager {tuple(b.shape)}"
        if a.numel():
            torch.testing.assert_close(a.to(b.dtype), b, atol=atol, rtol=rtol)
            diffs[str(i)] = float((a.double() - b.double()).abs().max())
        else:
            diffs[str(i)] = 0.0
    return diffs
