"""ShuffleNet v1 and DFNet V1/V2: registered architectures, sizes against the published tables,
the unit structure, feature-backbone strides/channels, weights round trip, configs."""
import pytest
import torch
from torch import nn

import torchcv  # noqa: F401
from torchcv.config import load_config
from torchcv.models.backbones import FeatureBackbone
from torchcv.models.backbones.shufflenet_v1 import ShuffleV1Unit, channel_shuffle
from torchcv.registry import ARCHS, MODELS, ConfigError


def count_macs(net: nn.Module, size: int = 224) -> int:
    """Multiply-accumulates of convolutions and linear layers for one image (the "FLOPs" of the
    ShuffleNet and Partial Order Pruning tables, which count a multiply-add once)."""
    total = 0

    def hook(m, _inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# megvii-model/ShuffleNet-Series, ShuffleNetV1/README.md: (FLOPs in M, #Params in M), ImageNet 224 px
SHUFFLENET_V1_TABLE = {
    "shufflenet_v1_g3_x2_0": (524, 5.4), "shufflenet_v1_g8_x2_0": (522, 6.5),
    "shufflenet_v1_g3_x1_5": (292, 3.4), "shufflenet_v1_g8_x1_5": (290, 4.3),
    "shufflenet_v1_g3_x1_0": (138, 1.9), "shufflenet_v1_g8_x1_0": (138, 2.4),
    "shufflenet_v1_g3_x0_5": (38, 0.7), "shufflenet_v1_g8_x0_5": (40, 1.0),
}


@pytest.mark.parametrize("arch", sorted(SHUFFLENET_V1_TABLE))
def test_shufflenet_v1_matches_the_reference_table(arch):
    net = ARCHS.get(arch)()
    mflops, mparams = SHUFFLENET_V1_TABLE[arch]
    assert round(n_params(net) / 1e6, 1) == mparams
    # within 0.5 MFLOPs everywhere except g3 x1.0 (137.5 counted, 138 published: the table rounds up there)
    assert abs(count_macs(net) / 1e6 - mflops) <= 0.55
    assert net.fc.out_features == 1000 and net.fc.bias is None  # as the reference: no classifier bias


def test_shufflenet_v1_exact_sizes():
    net = ARCHS.get("shufflenet_v1_g3_x1_0")()
    assert n_params(net) == 1_864_728 and count_macs(net) == 137_460_672
    assert [len(net.stage2), len(net.stage3), len(net.stage4)] == [4, 8, 4]
    first = net.stage2[0]
    assert first.conv1.groups == 1 and net.stage2[1].conv1.groups == 3  # the 24-channel stem is not split
    assert first.conv3.out_channels == 240 - 24  # the stride-2 branch adds what the pooled input lacks


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    # every group of the next group conv (consecutive blocks of 4) holds channels from all 3 groups
    y = channel_shuffle(torch.arange(12.0).view(1, 12, 1, 1), 3).flatten().long()
    for block in y.view(3, 4):
        assert sorted({int(c) // 4 for c in block}) == [0, 1, 2]


def test_shufflenet_v1_units_shortcut_and_zero_init():
    torch.manual_seed(0)
    unit = ShuffleV1Unit(24, 240, groups=3, stride=2, group_first_conv=False).eval()
    x = torch.rand(2, 24, 8, 8)
    with torch.no_grad():
        y = unit(x)
    assert y.shape == (2, 240, 4, 4)
    # the first 24 channels are the average-pooled input (the concatenated shortcut)
    torch.testing.assert_close(y[:, :24], nn.functional.avg_pool2d(x, 3, 2, 1), rtol=0, atol=0)
    # zero_init_residual: a stride-1 unit starts as the identity on its (non-negative, post-ReLU) input
    net = ARCHS.get("shufflenet_v1_g8_x0_5")(zero_init_residual=True).eval()
    unit = net.stage3[1]
    x = torch.rand(1, 384, 4, 4)
    with torch.no_grad():
        assert torch.equal(unit(x), x)


DFNET_SIZES = {  # the authors' prototxt layouts: (#params with a 1000-class fc, MACs at 224 px)
    "dfnet_v1": (8_533_128, 746_729_472),
    "dfnet_v2": (17_987_208, 1_774_333_952),
}


def test_dfnet_matches_the_paper_table():
    """Partial Order Pruning (CVPR 2019) lists DF1 at 746M and DF2 at 1.77G FLOPs (ResNet-18: 1.8G),
    as in the authors' repository (lixincn2015/Partial-Order-Pruning). The paper lists no parameter
    counts; the exact counts are those of the released prototxt layouts (conv + BN + fc)."""
    v1, v2 = ARCHS.get("dfnet_v1")(), ARCHS.get("dfnet_v2")()
    assert int(count_macs(v1) / 1e6) == 746
    assert round(count_macs(v2) / 1e9, 2) == 1.77
    assert round(count_macs(ARCHS.get("resnet18")()) / 1e9, 1) == 1.8  # the counter follows the paper's convention
    for name, net in (("dfnet_v1", v1), ("dfnet_v2", v2)):
        assert (n_params(net), count_macs(net)) == DFNET_SIZES[name]


def test_dfnet_layout():
    v1, v2 = ARCHS.get("dfnet_v1")(), ARCHS.get("dfnet_v2")()
    for net in (v1, v2):  # stem: two stride-2 3x3 convolutions, 32 then 64 channels, no max-pool
        assert [(s.conv.kernel_size, s.conv.stride, s.conv.out_channels) for s in (net.conv1, net.conv2)] == \
            [((3, 3), (2, 2), 32), ((3, 3), (2, 2), 64)]
        assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert [(n, len(getattr(v1, n)), getattr(v1, n)[-1].conv2.out_channels) for n in v1.stage_names] == \
        [("stage2", 3, 64), ("stage3", 3, 128), ("stage4", 3, 256), ("stage5", 1, 512)]
    assert [(len(getattr(v2, n)), getattr(v2, n)[-1].conv2.out_channels) for n in v2.stage_names] == \
        [(2, 64), (1, 128), (10, 128), (1, 256), (4, 256), (2, 512)]
    # a projection shortcut exactly where the shape changes (the prototxt's skipConv)
    projected = [f"{n}.{i}" for n in v2.stage_names for i, b in enumerate(getattr(v2, n)) if b.downsample is not None]
    assert projected == ["stage2_1.0", "stage2_2.0", "stage3_1.0", "stage3_2.0", "stage4_1.0", "stage4_2.0"]


@pytest.mark.parametrize("arch,channels", [
    ("dfnet_v1", [64, 64, 128, 512]),
    ("dfnet_v2", [64, 128, 256, 512]),
    ("shufflenet_v1_g3_x1_0", [24, 240, 480, 960]),
    ("shufflenet_v1_g8_x0_5", [16, 192, 384, 768]),
])
def test_usable_as_feature_backbone(arch, channels):
    bb = FeatureBackbone(arch, out_indices=[1, 2, 3, 4])
    assert bb.out_strides == [4, 8, 16, 32] and bb.out_channels == channels
    feats = bb(torch.rand(2, 3, 96, 64))
    assert list(feats) == ["1", "2", "3", "4"]
    for f, c, s in zip(feats.values(), channels, [4, 8, 16, 32]):
        assert tuple(f.shape) == (2, c, 96 // s, 64 // s)
    assert "fc" not in bb.body and "avgpool" not in bb.body


def test_classifier_contract_weights_round_trip_and_errors(tmp_path):
    for arch in ("dfnet_v1", "shufflenet_v1_g3_x0_5"):
        torch.manual_seed(0)
        ref = MODELS.build({"type": "ImageClassifier", "arch": arch, "num_classes": 6})
        losses = ref(torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 5]))
        assert set(losses) == {"loss_cls"} and losses["loss_cls"].ndim == 0
        losses["loss_cls"].backward()
        path = tmp_path / f"{arch}.pth"
        torch.save(ref.net.state_dict(), path)
        loaded = MODELS.build({"type": "ImageClassifier", "arch": arch, "num_classes": 6, "pretrained": str(path)})
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(loaded.eval()(x), ref.eval()(x)) and loaded(x).shape == (2, 6)
        # fine-tuning: another number of classes keeps the body and leaves a fresh classifier
        other = MODELS.build({"type": "ImageClassifier", "arch": arch, "num_classes": 3, "pretrained": str(path)})
        assert other.net.fc.out_features == 3
        torch.testing.assert_close(other.net.conv1.conv.weight, ref.net.conv1.conv.weight, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="unknown arguments.*width_mult"):
        MODELS.build({"type": "ImageClassifier", "arch": "dfnet_v2", "num_classes": 6,
                      "arch_kwargs": {"width_mult": 2}})
    with pytest.raises(ConfigError, match="dfnet_v1"):
        FeatureBackbone("dfnet_v3")


@pytest.mark.parametrize("config,arch", [
    ("configs/cls/shapes/shufflenet_v1_g3_x1_0_shapes.yaml", "shufflenet_v1_g3_x1_0"),
    ("configs/cls/shapes/dfnet_v1_shapes.yaml", "dfnet_v1"),
    ("configs/cls/shapes/dfnet_v2_shapes.yaml", "dfnet_v2"),
    ("configs/cls/imagenet/shufflenet_v1_g3_x1_0_imagenet.yaml", "shufflenet_v1_g3_x1_0"),
    ("configs/cls/imagenet/dfnet_v1_imagenet.yaml", "dfnet_v1"),
    ("configs/cls/imagenet/dfnet_v2_imagenet.yaml", "dfnet_v2"),
])
def test_configs_resolve(config, arch):
    cfg = load_config(config)
    assert cfg["model"]["arch"] == arch and cfg["task"] == "classification"
    if "/shapes/" in config:  # read at 64 px (see configs/_base_/datasets/cls_shapes_64px.yaml)
        for split in ("train", "val", "test"):
            assert cfg["data"][split]["transforms"][0] == {"type": "Resize", "size": 64, "antialias": True}
        assert cfg["model"]["num_classes"] == 6
    else:
        assert cfg["model"]["num_classes"] == 1000 and cfg["data"]["train"]["transforms"][0]["size"] == 224
