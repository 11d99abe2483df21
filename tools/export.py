#!/usr/bin/env python
"""Export a trained model with the task's fixed input/output contract (docs/deployment.md).

    python tools/export.py CONFIG CHECKPOINT --format onnx|torchscript|export [--out FILE] [--dynamic]
        [--input-size H W] [--check] [key=value ...]

classification / segmentation: images [B, 3, H, W] -> logits (modern exporter; --dynamic makes
batch, height and width symbolic). detection: one image [3, H, W] in [0, 1] -> boxes, labels, scores
[, masks | keypoints, keypoints_scores] (legacy ONNX exporter, opset 17; any input size: the example traced is --input-size,
default the config's model.min_size square). --check runs the ONNX file in onnxruntime against
eager on the export input and on a second input of another size (where the export is dynamic:
always for detection) and prints the largest differences.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUFFIX = {"onnx": ".onnx", "torchscript": ".ts.pt", "export": ".pt2"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("checkpoint", help="weights file, checkpoint, or torchvision://<Enum>.<MEMBER>")
    ap.add_argument("--format", required=True, choices=["onnx", "torchscript", "export"])
    ap.add_argument("--out", default=None, help="output file (default: work_dirs/export/<config name><suffix>)")
    ap.add_argument("--dynamic", action="store_true", help="symbolic batch / height / width (classification, segmentation)")
    ap.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), default=None)
    ap.add_argument("--check", action="store_true", help="compare the ONNX file with eager in onnxruntime")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args(argv)
    from torchcv.cli import _run
    return _run(lambda _: run(a), argv, a.debug)


def example_input(task: str, cfg, size):
    import torch

    g = torch.Generator().manual_seed(0)
    if task == "detection":
        model_cfg = cfg["model"]
        min_size = model_cfg.get("min_size", 800)
        side = int(min_size[-1] if isinstance(min_size, (list, tuple)) else min_size)
        h, w = size or (side, side)
        return torch.rand(3, h, w, generator=g)
    h, w = size or (224, 224)
    return torch.randn(1, 3, h, w, generator=g)


def run(a) -> int:
    import torch

    import torchcv  # noqa: F401
    from torchcv.config import load_config
    from torchcv.deploy.export import compare, eager_outputs, export, onnxruntime_outputs
    from torchcv.registry import TASKS
    from torchcv.utils.errors import TorchCVError
    from torchcv.utils.weights import load_weights

    cfg = load_config(a.config, a.overrides)
    task_name = cfg["task"]
    task = TASKS.get(task_name)(cfg)
    model = task.build_model()
    load_weights(model, a.checkpoint)
    model.eval()
    example = example_input(task_name, cfg, a.input_size)
    out = a.out or os.path.join("work_dirs", "export", os.path.splitext(os.path.basename(a.config))[0] + SUFFIX[a.format])
    export(model, task_name, a.format, example, out, dynamic=a.dynamic)
    print(f"{task_name} model -> {out} ({a.format}{', dynamic' if a.dynamic else ''}, input {tuple(example.shape)})")
    if a.check and a.format == "onnx":
        second = torch.rand_like(example)
        if task_name == "detection":
            second = torch.rand(3, example.shape[-2] + 32, example.shape[-1] - 32)
        elif a.dynamic:
            second = torch.randn(2, 3, example.shape[-2] + 32, example.shape[-1] + 32)
        for name, x in (("export input", example), (f"second input {tuple(second.shape)}", second)):
            try:
                diffs = compare(task_name, onnxruntime_outputs(out, x), eager_outputs(task_name, model, x))
            except AssertionError as e:  # one line, like every other error: what differs, on which input
                detail = " ".join(str(e).split())
                raise TorchCVError(f"{out}: onnxruntime and eager disagree on the {name}: {detail[:300]} "
                                   f"(detections are compared as sets, but two with near-equal scores at the "
                                   f"top-k cut or in NMS can still swap)") from None
            print(f"onnxruntime vs eager on the {name}: max abs difference per output {diffs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
