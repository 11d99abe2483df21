"""r3d_18, mc3_18 and r2plus1d_18: registered by torchvision's names, at width 1.0 load torchvision's
state_dict and give its outputs; narrower widths; VideoClassifier's train/eval contract."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from torchcv.registry import ARCHS, MODELS, ConfigError

from video_helpers import torchcv_logs_reach_caplog  # noqa: F401  (caplog sees torchcv logs after in-process runs)

VIDEO_ARCHS = ["r3d_18", "mc3_18", "r2plus1d_18"]


@pytest.mark.parametrize("arch", VIDEO_ARCHS)
def test_loads_torchvision_weights_and_gives_the_same_outputs(arch, tmp_path):
    torch.manual_seed(0)
    reference = getattr(torchvision.models.video, arch)(num_classes=400).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(reference.state_dict(), path)  # what a torchvision weights file holds
    ours = ARCHS.get(arch)(num_classes=400, pretrained=str(path)).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    model = MODELS.build({"type": "VideoClassifier", "arch": arch, "num_classes": 400, "pretrained": str(path)}).eval()
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = reference(clips)
        assert torch.allclose(ours(clips), expected, atol=1e-5, rtol=0)
        assert torch.allclose(model(clips), expected, atol=1e-5, rtol=0)
    assert expected.shape == (2, 400) and ARCHS.get(arch).video


def test_fine_tuning_keeps_the_backbone_and_reports_the_new_classifier(tmp_path, caplog):
    torch.manual_seed(0)
    reference = torchvision.models.video.r3d_18(num_classes=400)
    torch.save(reference.state_dict(), tmp_path / "k400.pth")
    with caplog.at_level("WARNING", logger="torchcv"):
        model = MODELS.build({"type": "VideoClassifier", "arch": "r3d_18", "num_classes": 101,
                              "pretrained": str(tmp_path / "k400.pth")})
    assert torch.equal(model.net.layer4[1].conv2[0].weight, reference.layer4[1].conv2[0].weight)
    assert model.net.fc.weight.shape == (101, 512) and "fc.weight: checkpoint (400, 512) vs model (101, 512)" in caplog.text


def test_video_classifier_contract():
    torch.manual_seed(0)
    model = MODELS.build({"type": "VideoClassifier", "arch": "mc3_18", "num_classes": 5, "label_smoothing": 0.1})
    clips, labels = torch.randn(2, 3, 4, 32, 32), torch.tensor([1, 4])
    losses = model(clips, labels)
    assert list(losses) == ["loss_cls"] and losses["loss_cls"].requires_grad
    model.eval()
    with torch.no_grad():
        logits = model(clips)
    assert logits.shape == (2, 5)
    model.train()
    torch.manual_seed(1)
    bn_state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = F.cross_entropy(model.net(clips), labels, label_smoothing=0.1)
    model.load_state_dict(bn_state)  # the reference forward moved BN running stats: restore them
    assert torch.allclose(model(clips, labels)["loss_cls"], expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"takes clips \[B, 3, T, H, W\], got shape \(2, 3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32), labels)


def test_image_architecture_is_refused_with_the_video_list():
    with pytest.raises(ConfigError, match="model.arch=resnet18 is an image network; VideoClassifier needs a clip "
                                          "network: mc3_18, r2plus1d_18, r3d_18"):
        MODELS.build({"type": "VideoClassifier", "arch": "resnet18", "num_classes": 5})
    assert {"r3d_18", "mc3_18", "r2plus1d_18", "resnet18"} <= set(ARCHS.names())


@pytest.mark.parametrize("arch", VIDEO_ARCHS)
def test_width_quarter_builds_runs_and_has_the_scaled_channels(arch):
    torch.manual_seed(0)
    net = ARCHS.get(arch)(num_classes=8, width=0.25).eval()
    assert [net.layer1[0].conv2[1].num_features, net.layer2[0].conv2[1].num_features,
            net.layer3[0].conv2[1].num_features, net.layer4[1].conv2[1].num_features] == [16, 32, 64, 128]
    assert net.fc.weight.shape == (8, 128) and net.stem[-2].num_features == 16
    if arch == "r2plus1d_18":
        assert net.stem[0].out_channels == 11  # torchvision's 45 scaled
    full = ARCHS.get(arch)(num_classes=8)
    assert set(net.state_dict()) == set(full.state_dict())  # same layout, narrower tensors
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in full.parameters()) / 10
    model = MODELS.build({"type": "VideoClassifier", "arch": arch, "num_classes": 8, "width": 0.25})
    assert model.net.fc.in_features == 128
    with torch.no_grad():
        assert net(torch.randn(2, 3, 8, 32, 32)).shape == (2, 8)


@pytest.mark.parametrize("width", [0, -0.5, "abc", True])
def test_bad_width_names_the_key_and_the_accepted_values(width):
    with pytest.raises(ConfigError, match=r"model\.width=.*must be a number > 0"):
        ARCHS.get("mc3_18")(num_classes=8, width=width)
