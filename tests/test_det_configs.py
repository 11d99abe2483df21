"""Every detection config resolves; the light ones build; torchvision-layout ones have the right heads."""
import glob
import os

import pytest

from torchcv.config import load_config
from torchcv.registry import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs/det/*/*.yaml")))


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_config_resolves(path):
    cfg = load_config(path)
    assert cfg["task"] == "detection" and cfg["model"]["type"]
    assert cfg["data"]["train"]["type"] in ("CocoDetection", "VOCDetection", "PennFudanDataset", "YOLODataset")


def test_mobilenet_320_config_builds():
    cfg = load_config(os.path.join(ROOT, "configs/det/coco/fasterrcnn_mobilenet_v3_large_320_fpn_coco.yaml"))
    model = MODELS.build(cfg["model"])
    assert model.transform.min_size == (320,) and model.rpn.post_nms[False] == 150
    assert model.backbone.return_layers == ["13", "16"]
    assert not any(p.requires_grad for p in model.backbone.body["6"].parameters())  # trainable_layers 3
    assert all(p.requires_grad for p in model.backbone.body["7"].parameters())


def test_shapes_default_config_builds():
    cfg = load_config(os.path.join(ROOT, "configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml"))
    model = MODELS.build(cfg["model"])
    assert model.num_classes == 5 and model.roi_heads.has_mask
