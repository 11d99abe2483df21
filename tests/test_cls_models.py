"""Every architecture of the seed list: registered, num_classes, torchvision weights -> same outputs."""
import pytest
import torch
import torchvision

from torchcv.models.backbones import FeatureBackbone
from torchcv.models.backbones.torchvision_nets import ARCH_NAMES
from torchcv.registry import ARCHS, MODELS

SEED_LIST = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
             "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "squeezenet1_0", "squeezenet1_1",
             "densenet121", "densenet161", "densenet169", "densenet201", "inception_v3", "googlenet",
             "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
             "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "resnext50_32x4d", "resnext101_32x8d",
             "wide_resnet50_2", "wide_resnet101_2", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]


def test_seed_list_is_registered():
    assert sorted(SEED_LIST) == sorted(ARCH_NAMES)
    for a in SEED_LIST:
        assert a in ARCHS


@pytest.mark.parametrize("arch", SEED_LIST)
def test_torchvision_weights_give_identical_outputs(arch, tmp_path):
    torch.manual_seed(0)
    kw = {"aux_logits": True, "init_weights": True} if arch in ("inception_v3", "googlenet") else {}
    ref = getattr(torchvision.models, arch)(weights=None, num_classes=10, **kw).eval()
    path = tmp_path / "tv.pth"
    torch.save(ref.state_dict(), path)
    ours = MODELS.build({"type": "ImageClassifier", "arch": arch, "num_classes": 10, "pretrained": str(path)}).eval()
    x = torch.rand(2, 3, 80, 80)
    with torch.no_grad():
        expected = ref(x)
        got = ours(x)
    assert got.shape == (2, 10)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_finetune_flow_replaces_the_classifier(tmp_path):
    ref = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "imagenet.pth"
    torch.save(ref.state_dict(), path)
    ours = MODELS.build({"type": "ImageClassifier", "arch": "resnet18", "num_classes": 6, "pretrained": str(path)})
    assert ours.net.fc.out_features == 6
    torch.testing.assert_close(ours.net.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)


def test_train_mode_returns_losses_including_aux_heads():
    m = MODELS.build({"type": "ImageClassifier", "arch": "googlenet", "num_classes": 4}).train()
    losses = m(torch.rand(2, 3, 96, 96), torch.tensor([0, 3]))
    assert set(losses) == {"loss_cls", "loss_aux"} and all(v.ndim == 0 for v in losses.values())
    m = MODELS.build({"type": "ImageClassifier", "arch": "resnet18", "num_classes": 4, "mixup_alpha": 0.2,
                      "cutmix_alpha": 1.0, "label_smoothing": 0.1}).train()
    losses = m(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(losses["loss_cls"])


@pytest.mark.parametrize("arch,indices,strides", [
    ("resnet50", [1, 2, 3, 4], [4, 8, 16, 32]),
    ("mobilenet_v3_large", [2, 3, 4], [8, 16, 32]),
    ("vgg11_bn", [1, 2, 3], [4, 8, 16]),
    ("densenet121", [2, 3], [8, 16]),
    ("shufflenet_v2_x1_0", [2, 3, 4], [8, 16, 32]),
])
def test_backbones_return_multiscale_features(arch, indices, strides):
    bb = FeatureBackbone(arch, out_indices=indices)
    feats = bb(torch.rand(1, 3, 128, 128))
    assert list(feats) == [str(i) for i in indices]
    assert bb.out_strides == strides
    for f, c, s in zip(feats.values(), bb.out_channels, strides):
        assert f.shape[1] == c and f.shape[-1] == 128 // s


def test_dilated_resnet_keeps_resolution_and_frozen_stages():
    bb = FeatureBackbone("resnet50", out_indices=[4], norm="frozen_bn", frozen_stages=1,
                         arch_kwargs={"replace_stride_with_dilation": [False, True, True]})
    assert bb(torch.rand(1, 3, 64, 64))["4"].shape[-1] == 8  # output stride 8
    assert not any(p.requires_grad for p in bb.body["layer1"].parameters())
    assert all(p.requires_grad for p in bb.body["layer2"].parameters())
