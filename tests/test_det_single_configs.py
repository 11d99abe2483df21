"""Single-stage configs: the torchvision-layout ones build with torchvision's structure and the
recipes of the references; the light ones (built-in data) build and run a step."""
import os

import pytest
import torch

from torchcv.config import load_config
from torchcv.registry import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
         "yolov3_darknet53"]
LIGHT = ["retinanet_shufflenet_fpn", "fcos_shufflenet_fpn", "ssd_shufflenet", "ssdlite_mobilenet_v3", "yolov3_darknet"]


def _cfg(dataset, name):
    return load_config(os.path.join(ROOT, f"configs/det/{dataset}/{name}_{dataset}.yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_every_model_has_coco_voc_configs_and_scripts(name):
    for dataset in ("coco", "voc"):
        cfg = _cfg(dataset, name)
        assert cfg["task"] == "detection"
        assert os.path.isfile(os.path.join(ROOT, f"scripts/det/{dataset}/run_{name}_{dataset}.sh"))
    assert _cfg("voc", name)["model"]["num_classes"] == 21
    assert _cfg("coco", name)["model"]["num_classes"] == (81 if name.startswith("yolo") else 91)


def test_recipes_follow_the_references():
    retina, ssd, lite = _cfg("coco", NAMES[0]), _cfg("coco", NAMES[2]), _cfg("coco", NAMES[3])
    assert retina["train"]["max_epochs"] == 26 and retina["lr_schedule"]["milestones"] == [16, 22]
    assert _cfg("coco", NAMES[1])["train"]["max_epochs"] == 26
    assert ssd["train"]["max_epochs"] == 120 and ssd["lr_schedule"]["milestones"] == [80, 110]
    assert [t["type"] for t in ssd["data"]["train"]["transforms"]] == [
        "RandomPhotometricDistort", "RandomZoomOut", "RandomIoUCrop", "RandomHorizontalFlip"]
    assert lite["lr_schedule"]["policy"] == "cosine" and lite["model"]["size"] == [320, 320]
    assert [t["type"] for t in lite["data"]["train"]["transforms"]] == ["RandomIoUCrop", "RandomHorizontalFlip"]
    yolo = _cfg("coco", NAMES[4])
    assert yolo["model"]["size"] == 416 and yolo["data"]["train"]["contiguous_labels"] is True


def test_config_models_have_torchvision_layout():
    from torchvision.models import detection as tvd
    cfg = _cfg("coco", "ssdlite320_mobilenet_v3_large")
    ours = MODELS.build(cfg["model"])
    tv = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    assert ours.state_dict().keys() == tv.state_dict().keys()
    ours = MODELS.build(_cfg("voc", "retinanet_resnet50_fpn")["model"])
    tv = tvd.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=21)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in tv.state_dict().items()
                                                                   if "num_batches_tracked" not in k}
    assert not ours.backbone.body["layer1"][0].conv1.weight.requires_grad  # trainable_backbone_layers 3
    assert ours.backbone.body["layer2"][0].conv1.weight.requires_grad


@pytest.mark.parametrize("name", LIGHT)
def test_light_configs_build_and_step(name):
    torch.manual_seed(0)
    cfg = _cfg("shapes", name)
    model = MODELS.build(cfg["model"])
    assert model.num_classes == 5
    images = [torch.rand(3, 128, 160), torch.rand(3, 160, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 70.0, 90.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[1]["boxes"].shape[-1] == 4
