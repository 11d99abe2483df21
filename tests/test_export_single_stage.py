"""Single-stage detectors (RetinaNet, FCOS, SSD, YOLOv3) export with the detection
contract and follow their input size: onnxruntime against eager on the export image and on an
image of another size and aspect (detections compared as sets)."""
import os

import pytest
import torch
from torch import nn

from torchcv.config import load_config
from torchcv.deploy.export import eager_outputs, export, onnxruntime_outputs
from torchcv.registry import TASKS

from conftest import ROOT

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[export])")


def _head_without_prior(model: nn.Module):
    """He-initialised head convolutions without the prior-probability bias: scores spread around
    0.5 instead of sitting on the prior, so most detections are clear of the top-k cut."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.head.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()


def _keep_by_threshold_only(model: nn.Module, images, quantile: float = 0.995) -> float:
    """No top-k cut and no suppression: the kept set depends only on scores against a threshold
    (the lowest of the images' score quantiles), so float-rounding differences between onnxruntime and
    eager can only matter for scores within rounding distance of it. Returns the threshold."""
    model.topk_candidates, model.detections_per_img, model.nms_thresh, model.score_thresh = 10 ** 7, 10 ** 7, 1.0, 0.0
    model.score_thresh = min(float(torch.quantile(eager_outputs("detection", model, im)[2], quantile)) for im in images)
    return model.score_thresh


def _same_detections(ours, ref, thresh, margin=1e-4, atol=1e-3):
    """Every detection scored clearly above the threshold is in the other set with the same label,
    score and box."""
    for a, b in ((ours, ref), (ref, ours)):
        for box, label, score in zip(a[0], a[1], a[2]):
            if score <= thresh + margin:
                continue
            same = (b[1] == label) & ((b[2] - score).abs() < 1e-5) & ((b[0] - box).abs().max(1).values < atol)
            assert same.any(), f"detection {label.item()} {score.item():.6f} {box.tolist()} has no counterpart"


@pytest.mark.parametrize("config", [
    "configs/det/shapes/retinanet_shufflenet_fpn_shapes.yaml",
    "configs/det/shapes/fcos_shufflenet_fpn_shapes.yaml",
    "configs/det/shapes/ssd_shufflenet_shapes.yaml",
    "configs/det/shapes/yolov3_darknet_shapes.yaml",
])
def test_single_stage_onnx_follows_the_input_size(tmp_path, config):
    cfg = load_config(os.path.join(ROOT, config))
    torch.manual_seed(0)
    model = TASKS.get("detection")(cfg).build_model().eval()
    _head_without_prior(model)
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(3, 160, 128, generator=g), torch.rand(3, 120, 200, generator=g))
    thresh = _keep_by_threshold_only(model, images)
    path = export(model, "detection", "onnx", images[0], str(tmp_path / "det.onnx"))
    for img in images:
        out, ref = onnxruntime_outputs(path, img), eager_outputs("detection", model, img)
        assert ref[0].shape[0] > 0 and abs(len(out[0]) - len(ref[0])) <= 2  # only threshold ties may differ
        # boxes in the image's own coordinates: a graph with the export size baked in fails here
        assert float(ref[0][:, 2].max()) <= img.shape[-1] + 1e-3
        _same_detections(out, ref, thresh)
