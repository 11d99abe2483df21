"""Export with the per-task contract, checked in onnxruntime against eager (two input sizes;
detections compared as sets; an image without detections). Classification goes through the CLI
(--dynamic --check), segmentation is slow-marked (about a minute of torch.export on 2 cores)."""
import os

import pytest
import torch
from torch import nn

from torchcv.config import load_config
from torchcv.deploy.export import (ExportError, compare, detection_keys, eager_outputs, export,
                                   onnxruntime_outputs)
from torchcv.models.classifiers.image_classifier import ImageClassifier
from torchcv.registry import MODELS, TASKS

from conftest import ROOT
from test_bad_input import one_line_error

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[export])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e .[export])")


@pytest.mark.slow  # about 60 s on a busy 2-core CPU (torch.export of MobileNetV3 + LR-ASPP)
def test_segmentation_onnx_dynamic_two_sizes(tmp_path):
    torch.manual_seed(0)
    model = MODELS.get("lraspp_mobilenet_v3_large")(num_classes=3).eval()
    path = export(model, "segmentation", "onnx", torch.randn(1, 3, 64, 64), str(tmp_path / "seg.onnx"), dynamic=True)
    for x in (torch.randn(1, 3, 64, 64), torch.randn(2, 3, 96, 128)):
        out = onnxruntime_outputs(path, x)
        assert out[0].shape == (x.shape[0], 3, *x.shape[-2:])
        compare("segmentation", out, eager_outputs("segmentation", model, x))


def _det_model(config, *overrides):
    cfg = load_config(os.path.join(ROOT, config), ["model.min_size=128", "model.max_size=160", *overrides])
    torch.manual_seed(0)
    return TASKS.get("detection")(cfg).build_model().eval()


@pytest.mark.parametrize("config,keys", [
    ("configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml", ["boxes", "labels", "scores", "masks"]),
    ("configs/pose/shapes/keypointrcnn_shufflenet_fpn_shapes.yaml",
     ["boxes", "labels", "scores", "keypoints", "keypoints_scores"]),
])
def test_detection_onnx_matches_eager_as_sets(tmp_path, config, keys):
    model = _det_model(config, "+model.roi_heads={score_thresh: 0.0}")
    x = torch.rand(3, 128, 160, generator=torch.Generator().manual_seed(1))
    assert detection_keys(model, x) == keys
    path = export(model, "detection", "onnx", x, str(tmp_path / "det.onnx"))
    g = torch.Generator().manual_seed(2)
    for img in (x, torch.rand(3, 128, 160, generator=g), torch.rand(3, 100, 190, generator=g)):  # two sizes
        out = onnxruntime_outputs(path, img)
        ref = eager_outputs("detection", model, img)
        assert len(out) == len(keys) and out[0].shape[0] > 0
        if "masks" in keys:
            assert out[3].shape[-2:] == img.shape[-2:]
        compare("detection", out, ref, atol=1e-3)
    # a model that keeps nothing: every output empty, in the contract's order
    empty = _det_model(config, "+model.roi_heads={score_thresh: 0.999}")
    path = export(empty, "detection", "onnx", x, str(tmp_path / "det_empty.onnx"))
    out = onnxruntime_outputs(path, torch.zeros(3, 128, 160))
    assert all(o.shape[0] == 0 for o in out) and len(out) == len(keys)


def test_torchscript_and_torch_export_classification(tmp_path):
    torch.manual_seed(0)
    model = ImageClassifier("resnet18", 6).eval()
    x = torch.randn(2, 3, 64, 64)
    ts = torch.jit.load(export(model, "classification", "torchscript", x, str(tmp_path / "m.ts.pt")))
    assert torch.equal(ts(x), model(x))
    ep = torch.export.load(export(model, "classification", "export", x, str(tmp_path / "m.pt2"), dynamic=True))
    y = torch.randn(3, 3, 80, 64)
    torch.testing.assert_close(ep.module()(y), model(y), rtol=1e-5, atol=1e-5)


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # a branch on a value: torch.export cannot capture it
            return x * 2
        return x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.gate = DataDependent()

    def forward(self, x):
        return self.gate(self.stem(x))


def test_untraceable_forward_names_module_and_reason(tmp_path):
    with pytest.raises(ExportError, match=r"module 'gate' \(DataDependent\) failed: .*data"):
        export(Net().eval(), "classification", "export", torch.randn(1, 3, 16, 16), str(tmp_path / "x.pt2"))


def test_export_cli_one_line_error_and_check(tmp_path, capsys):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import export as export_tool
    cfg = "configs/cls/shapes/resnet18_shapes.yaml"
    weights = tmp_path / "w.pth"
    torch.manual_seed(0)
    torch.save(ImageClassifier("resnet18", 6).state_dict(), weights)
    rc = export_tool.main([cfg, str(tmp_path / "missing.pth"), "--format", "onnx"])
    one_line_error(capsys, rc, 1, "missing.pth")
    rc = export_tool.main([cfg, str(weights), "--format", "onnx", "--dynamic", "--input-size", "32", "32", "--check",
                           "--out", str(tmp_path / "cls.onnx")])
    out = capsys.readouterr().out
    # classification through the CLI: dynamic batch and size, checked in onnxruntime on two sizes
    assert rc == 0 and "on the export input" in out and "on the second input (2, 3, 64, 64)" in out
    assert out.count("max abs difference") == 2
