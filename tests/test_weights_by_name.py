"""torchvision weight names wherever a weights path is accepted (``torchvision://Enum.MEMBER``),
resolved into the torch hub cache. The cache is simulated: a state_dict written under the file name
torchvision would download into a temporary TORCH_HOME; nothing is downloaded."""
import logging
import os

import pytest
import torch
import torchvision

from torchcv.cli import train_main
from torchcv.models.classifiers.image_classifier import ImageClassifier
from torchcv.utils.errors import CheckpointError
from torchcv.utils.weights import resolve_weights

from conftest import CLS_FAST
from test_bad_input import CLS, one_line_error


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """A TORCH_HOME holding torchvision's resnet18 file name with seeded random weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("TORCHCV_OFFLINE", "1")
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(num_classes=1000)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(reference.state_dict(), folder / os.path.basename(url))
    return folder, reference


def test_name_resolves_to_the_cached_file_and_loads(hub):
    folder, reference = hub
    path = resolve_weights("torchvision://ResNet18_Weights.IMAGENET1K_V1")
    assert path == str(folder / "resnet18-f37072fd.pth")
    assert resolve_weights("torchvision://ResNet18_Weights.DEFAULT") == path
    model = ImageClassifier("resnet18", 1000, pretrained="torchvision://ResNet18_Weights.DEFAULT").eval()
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(model(x), reference.eval()(x))


def test_class_count_mismatch_reports_the_keys(hub, caplog):
    # the trainer's logger setup stops propagation to the root logger: listen on "torchcv" itself
    log = logging.getLogger("torchcv")
    log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="torchcv"):
            model = ImageClassifier("resnet18", 6, pretrained="torchvision://ResNet18_Weights.IMAGENET1K_V1")
    finally:
        log.removeHandler(caplog.handler)
    text = caplog.text
    assert "mismatched keys (2)" in text and "fc.weight: checkpoint (1000, 512) vs model (6, 512)" in text
    assert torch.equal(model.net.conv1.weight, hub[1].conv1.weight)


def test_missing_file_offline_names_url_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("TORCHCV_OFFLINE", "1")
    with pytest.raises(CheckpointError) as e:
        resolve_weights("torchvision://ResNet50_Weights.IMAGENET1K_V2")
    msg = str(e.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in msg
    assert "resnet50-11ad3fa6.pth" in msg and str(tmp_path / "empty_home" / "hub" / "checkpoints") in msg


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("TORCHCV_OFFLINE", raising=False)

    def no_network(url, dst, **kw):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(CheckpointError, match="cannot download .*resnet18-f37072fd.pth.*Network is unreachable.*put the file"):
        resolve_weights("torchvision://ResNet18_Weights.IMAGENET1K_V1")


def test_unknown_name_is_one_line_with_close_names(tmp_path, shapes_cls, capsys, hub):
    rc = train_main([CLS, "--work-dir", str(tmp_path / "wd"), *CLS_FAST, f"data.root={shapes_cls}",
                     "model.pretrained=torchvision://ResNet18_Weights.IMAGENET1K_V9"])
    one_line_error(capsys, rc, 1, "torchvision://ResNet18_Weights.IMAGENET1K_V9", "Did you mean",
                   "ResNet18_Weights.IMAGENET1K_V1")


def test_detection_backbone_and_load_from_by_name(tmp_path, monkeypatch):
    """A detection config's backbone ``pretrained`` and ``load_from`` take names too (the tutorial's
    fine-tuning from COCO weights): both resolve into the simulated cache and load what is there."""
    from torchcv.config import load_config
    from torchcv.registry import MODELS
    from torchcv.utils.weights import load_weights

    from conftest import ROOT
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("TORCHCV_OFFLINE", "1")
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(5)
    imagenet = torchvision.models.shufflenet_v2_x1_0(num_classes=1000)
    torch.save(imagenet.state_dict(), folder / os.path.basename(
        torchvision.models.ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1.url))

    cfg = load_config(os.path.join(ROOT, "configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml"),
                      ["+model.backbone.pretrained=torchvision://ShuffleNet_V2_X1_0_Weights.DEFAULT"])
    model = MODELS.build(cfg["model"])
    assert torch.equal(model.backbone.body["conv1"][0].weight, imagenet.conv1[0].weight)
    assert torch.equal(model.backbone.body["stage4"][0].branch2[0].weight, imagenet.stage4[0].branch2[0].weight)

    # load_from: the file cached under Mask R-CNN's COCO name (here a detector of the same layout)
    torch.manual_seed(6)
    source = MODELS.build(load_config(os.path.join(ROOT, "configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml"))["model"])
    torch.save(source.state_dict(), folder / os.path.basename(
        torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url))
    report = load_weights(model, "torchvision://MaskRCNN_ResNet50_FPN_Weights.COCO_V1")
    assert report["missing"] == [] and report["mismatched"] == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
