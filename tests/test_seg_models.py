"""Segmentation models: torchvision weight compatibility (same outputs through the key map),
the train/eval contract, heads, and the loss."""
import pytest
import torch
import torchvision

import torchcv  # noqa: F401
from torchcv.models.segmentors.tv_compat import convert_torchvision_state_dict, load_torchvision_weights
from torchcv.registry import MODELS, ConfigError, LOSSES

TV_MODELS = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
             "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _close(got, ref):
    """Equal up to float rounding relative to the output's scale (random deep ResNets reach 1e5)."""
    assert got.shape == ref.shape
    assert float((got - ref).abs().max()) <= 1e-5 * float(ref.abs().max()) + 1e-5


@pytest.mark.parametrize("name", TV_MODELS)
def test_same_outputs_as_torchvision(name):
    torch.manual_seed(0)
    kw = {} if name.startswith("lraspp") else {"aux_loss": True}
    tv = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None, num_classes=5, **kw)
    _randomize_bn(tv)
    tv.eval()
    x = torch.randn(2, 3, 72, 56)
    with torch.no_grad():
        ref = tv(x)
    # default (channels_last) layout: same up to rounding; NCHW layout: bit-identical
    for channels_last in (True, False):
        ours = MODELS.get(name)(num_classes=5, channels_last=channels_last).eval()
        load_torchvision_weights(ours, tv.state_dict())
        with torch.no_grad():
            got = ours.forward_logits(x, with_aux=True)
            plain = ours(x)
        assert plain.shape == (2, 5, 72, 56)
        if channels_last:
            _close(got["out"], ref["out"])
            _close(plain, ref["out"])
            if "aux" in ref:
                _close(got["aux"], ref["aux"])
        else:
            assert torch.equal(got["out"], ref["out"]) and torch.equal(plain, ref["out"])
            assert "aux" not in ref or torch.equal(got["aux"], ref["aux"])


def test_key_map_is_total_and_config_model_matches_builder():
    """A config-built EncoderDecoder has the same keys as the named builder (so one key map serves both)."""
    from torchcv.config import load_config
    cfg = load_config("configs/seg/voc/deeplabv3_mobilenet_v3_large_voc.yaml")
    built = MODELS.build(cfg["model"], key="model")
    named = MODELS.get("deeplabv3_mobilenet_v3_large")(num_classes=21)
    assert built.state_dict().keys() == named.state_dict().keys()
    tv = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                      num_classes=21, aux_loss=True)
    assert set(convert_torchvision_state_dict(tv.state_dict())) == set(built.state_dict())
    with pytest.raises(KeyError, match="no rule"):
        convert_torchvision_state_dict({"weird.key": torch.zeros(1)})


@pytest.mark.parametrize("head", [
    {"type": "PSPHead", "in_channels": 512, "num_classes": 3, "channels": 32, "in_key": "out"},
    {"type": "DenseASPPHead", "in_channels": 512, "num_classes": 3, "mid_channels": 16, "growth": 8, "in_key": "out"},
    {"type": "ASPPHead", "in_channels": 512, "num_classes": 3, "channels": 16, "rates": [2, 4, 6], "in_key": "out"},
])
def test_heads_train_and_eval(head):
    cfg = {"type": "EncoderDecoder",
           "backbone": {"type": "FeatureBackbone", "arch": "resnet18", "output_stride": 32,
                        "return_layers": {"layer2": "aux", "layer4": "out"}},
           "decode_head": head,
           "aux_head": {"type": "FCNHead", "in_channels": 128, "num_classes": 3, "in_key": "aux"},
           "aux_weight": 0.4}
    model = MODELS.build(cfg)
    x, t = torch.randn(2, 3, 48, 40), torch.randint(0, 3, (2, 48, 40))
    t[:, :4] = 255
    losses = model(x, t)
    assert set(losses) == {"loss_seg", "loss_aux"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 3, 48, 40)


def test_output_stride_and_backbone_errors():
    from torchcv.models.backbones.features import FeatureBackbone as FB
    bb = FB("resnet50", return_layers={"layer4": "out"}, output_stride=16)
    assert bb(torch.zeros(1, 3, 64, 64))["out"].shape[-1] == 4 and bb.out_strides == [16]
    mb = FB("mobilenet_v3_large", return_layers={"4": "low"}, output_stride=16, bn_momentum=0.1)
    assert {m.momentum for m in mb.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    with pytest.raises(ConfigError, match="not children"):
        FB("resnet18", return_layers={"layer9": "out"})
    with pytest.raises(ConfigError, match="cannot be dilated|supports"):
        FB("vgg11", return_layers={"0": "out"}, output_stride=8)
    with pytest.raises(ConfigError, match="bottleneck ResNet"):
        FB("resnet18", return_layers={"layer4": "out"}, output_stride=8)
    with pytest.raises(ConfigError, match="MobileNetV3 supports 16"):
        FB("mobilenet_v3_large", return_layers={"16": "out"}, output_stride=8)


def test_cross_entropy_ignore_ohem_and_class_weight():
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0] = 255
    ce = LOSSES.build({"type": "SegCrossEntropyLoss"})
    ref = torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(ce(logits, target), ref)
    # OHEM keeps only hard pixels: with min_kept=10 the loss is the mean of the 10 largest-loss pixels
    ohem = LOSSES.build({"type": "SegCrossEntropyLoss", "ohem_thresh": 1e-6, "ohem_min_kept": 10})
    per = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none").flatten()
    per = per[target.flatten() != 255]
    torch.testing.assert_close(ohem(logits, target), per.sort(descending=True).values[:10].mean())
    assert ohem(logits, target) > ref
    w = LOSSES.build({"type": "SegCrossEntropyLoss", "class_weight": [1.0, 2.0, 1.0, 1.0]})
    ref_w = torch.nn.functional.cross_entropy(logits, target, ignore_index=255,
                                              weight=torch.tensor([1.0, 2.0, 1.0, 1.0]))
    torch.testing.assert_close(w(logits, target), ref_w)
    with pytest.raises(ConfigError, match="3 entries"):
        LOSSES.build({"type": "SegCrossEntropyLoss", "class_weight": [1.0, 2.0, 1.0]})(logits, target)
    all_ignored = torch.full_like(target, 255)
    assert float(ohem(logits, all_ignored).detach()) == 0.0
