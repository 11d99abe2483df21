"""ANN (asymmetric non-local) head: pyramid-pooled attention against a brute-force reference, the
zero-initialised output projections (each block starts as its plain fusion of the input), the
segmentor contract, builders and configs."""
import pytest
import torch
import torch.nn.functional as F

import torchcv  # noqa: F401
from torchcv.config import load_config
from torchcv.models.heads.ann_head import AFNB, APNB, ANNHead, AsymmetricNonLocal, pyramid_pool
from torchcv.registry import HEADS, MODELS, ConfigError


def _randomize(module):
    """Non-zero output projections and BN statistics, so the attention path shows in the output."""
    g = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, AsymmetricNonLocal):
            m.out_proj.weight.data.copy_(torch.randn(m.out_proj.weight.shape, generator=g) * 0.1)
            m.out_proj.bias.data.copy_(torch.randn(m.out_proj.bias.shape, generator=g) * 0.1)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_pyramid_pool_gives_110_anchors():
    x = torch.randn(2, 5, 12, 9)
    anchors = pyramid_pool(x, (1, 3, 6, 8))
    assert anchors.shape == (2, 5, 110)
    torch.testing.assert_close(anchors[:, :, 0], x.mean(dim=(2, 3)))          # size 1: the global mean
    torch.testing.assert_close(anchors[:, :, 1:10], F.adaptive_avg_pool2d(x, 3).flatten(2))
    assert AsymmetricNonLocal(4, 4, 2, 2, 4).num_anchors == 110


def test_attention_matches_brute_force():
    torch.manual_seed(0)
    block = AsymmetricNonLocal(query_channels=6, source_channels=5, key_channels=4, value_channels=3,
                               out_channels=7).eval()
    _randomize(block)
    q_in, s_in = torch.randn(2, 6, 5, 4), torch.randn(2, 5, 10, 8)  # queries and keys of different sizes
    with torch.no_grad():
        got = block(q_in, s_in)
        q, k, v = block.query(q_in), block.key(s_in), block.value(s_in)
        expected = torch.zeros(2, 3, 5, 4)
        for b in range(2):
            anchors_k = torch.cat([F.adaptive_avg_pool2d(k[b:b + 1], s).reshape(4, -1) for s in (1, 3, 6, 8)], 1)
            anchors_v = torch.cat([F.adaptive_avg_pool2d(v[b:b + 1], s).reshape(3, -1) for s in (1, 3, 6, 8)], 1)
            for i in range(5):
                for j in range(4):
                    w = torch.softmax(q[b, :, i, j] @ anchors_k / 2.0, dim=0)  # 1/sqrt(key_channels=4)
                    expected[b, :, i, j] = anchors_v @ w
        expected = block.out_proj(expected)
    assert got.shape == (2, 7, 5, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_blocks_are_their_plain_fusion_at_init():
    """The zero-initialised output projection: the attention adds exactly nothing at init, so AFNB is
    its 1x1 fusion of C5 alone (C4 has no effect) and APNB its fusion of the input alone."""
    torch.manual_seed(0)
    afnb = AFNB(low_channels=8, high_channels=12, out_channels=12, key_channels=4, value_channels=4).eval()
    low, high = torch.randn(2, 8, 9, 9), torch.randn(2, 12, 9, 9)
    with torch.no_grad():
        assert torch.equal(afnb.attention(high, low), torch.zeros(2, 12, 9, 9))
        assert torch.equal(high + afnb.attention(high, low), high)  # as a residual non-local block: the identity
        out = afnb(low, high)
        assert torch.equal(out, afnb(torch.randn_like(low) * 10, high))  # the low-level map is ignored at init
        assert torch.equal(out, afnb.fuse(torch.cat([torch.zeros_like(high), high], 1)))
    apnb = APNB(channels=12, out_channels=12, key_channels=4, value_channels=4).eval()
    with torch.no_grad():
        assert torch.equal(apnb(high), apnb.fuse(torch.cat([torch.zeros_like(high), high], 1)))
    assert apnb.attention.key is apnb.attention.query  # self-attention shares the query/key embedding
    # once the projection has learned something, the low-level map does matter
    _randomize(afnb)
    with torch.no_grad():
        assert not torch.allclose(afnb(low, high), afnb(torch.randn_like(low), high))


def test_only_the_output_projection_learns_first():
    """With a zero projection, the gradient reaches the projection and nothing before it, so the
    first steps learn how much context to add before they reshape the attention."""
    torch.manual_seed(0)
    afnb = AFNB(8, 12, 12, key_channels=4, value_channels=4)
    afnb(torch.randn(2, 8, 6, 6), torch.randn(2, 12, 6, 6)).square().sum().backward()
    att = afnb.attention
    assert att.out_proj.weight.grad.abs().sum() > 0
    for p in list(att.query.parameters()) + list(att.key.parameters()) + list(att.value.parameters()):
        assert p.grad is None or torch.count_nonzero(p.grad) == 0


def _tiny_ann(channels_last=True):
    cfg = {"type": "EncoderDecoder",
           "backbone": {"type": "FeatureBackbone", "arch": "resnet18", "output_stride": 32,
                        "return_layers": {"layer3": "c4", "layer4": "c5"}},
           "decode_head": {"type": "ANNHead", "low_channels": 256, "high_channels": 512, "num_classes": 3,
                           "channels": 32, "key_channels": 8, "value_channels": 8, "low_key": "c4", "high_key": "c5"},
           "aux_head": {"type": "FCNHead", "in_channels": 256, "num_classes": 3, "in_key": "c4"},
           "aux_weight": 0.4, "channels_last": channels_last}
    return MODELS.build(cfg)


def test_segmentor_contract_and_layouts():
    torch.manual_seed(0)
    model = _tiny_ann()
    x, t = torch.randn(2, 3, 64, 48), torch.randint(0, 3, (2, 64, 48))
    t[:, :4] = 255
    losses = model(x, t)
    assert set(losses) == {"loss_seg", "loss_aux"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.decode_head.fusion.attention.out_proj.weight.grad.abs().sum() > 0
    model.eval()
    plain = _tiny_ann(channels_last=False).eval()
    plain.load_state_dict(model.state_dict())
    _randomize(model), _randomize(plain)
    with torch.no_grad():
        out, ref = model(x), plain(x)  # C4 (4x3) and C5 (2x2) differ in size: undilated backbone
    assert out.shape == (2, 3, 64, 48)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)  # NHWC vs NCHW: rounding only


def test_builders_and_configs():
    assert "ANNHead" in HEADS and "ann_resnet50" in MODELS and "ann_resnet101" in MODELS
    named = MODELS.get("ann_resnet50")(num_classes=4, output_stride=16)
    cfg = load_config("configs/seg/shapes/ann_resnet50_shapes.yaml")
    built = MODELS.build(cfg["model"], key="model")
    assert isinstance(built.decode_head, ANNHead) and built.decode_head.num_classes == 4
    assert built.decode_head.fusion.attention.num_anchors == 110
    # the config and the named builder build the same modules (the aux head is wider in the config: 512)
    head_keys = {k for k in built.state_dict() if k.startswith(("backbone.", "decode_head."))}
    assert head_keys == {k for k in named.state_dict() if k.startswith(("backbone.", "decode_head."))}
    named.eval()
    with torch.no_grad():
        assert named(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)
    city = load_config("configs/seg/cityscapes/ann_resnet101_cityscapes.yaml")
    assert city["model"]["backbone"]["arch"] == "resnet101"
    assert city["model"]["backbone"]["pretrained"] == "torchvision://ResNet101_Weights.IMAGENET1K_V1"
    assert city["model"]["backbone"]["arch_kwargs"]["replace_stride_with_dilation"] == [False, True, True]
    assert city["model"]["decode_head"]["num_classes"] == 19 and city["model"]["aux_weight"] == 0.4
    assert city["train"]["max_iters"] == 60000 and city["optimizer"]["weight_decay"] == 0.0005
    assert city["model"]["loss"]["ohem_thresh"] == 0.7 and len(city["model"]["loss"]["class_weight"]) == 19
    with pytest.raises(ConfigError, match="pool_sizes"):
        ANNHead(8, 8, 2, pool_sizes=[])


def test_cpu_sized_ann_and_pspnet_configs_compare_like_for_like():
    ann = load_config("configs/seg/shapes/ann_resnet18_shapes.yaml")
    psp = load_config("configs/seg/shapes/pspnet_resnet18_shapes.yaml")
    for key in ("data", "train", "optimizer", "lr_schedule"):
        assert ann[key] == psp[key], key
    assert ann["model"]["backbone"] == psp["model"]["backbone"]
    # the same auxiliary head; only its Dropout2d follows each model's reference (ANN 0.05, PSPNet 0.1)
    drop = {"dropout"}
    assert ({k: v for k, v in ann["model"]["aux_head"].items() if k not in drop}
            == {k: v for k, v in psp["model"]["aux_head"].items() if k not in drop})
    assert ann["data"]["train"]["transforms"][1]["size"] == 96 and ann["train"]["max_iters"] == 500
    models = {n: MODELS.build(c["model"], key="model").eval() for n, c in (("ann", ann), ("psp", psp))}
    assert isinstance(models["ann"].decode_head, ANNHead)
    assert models["ann"].decode_head.fusion.attention.num_anchors == 110
    # the same backbone (ResNet-18 cut after layer3, output stride 16): identical parameter names
    backbone = [{k for k in m.state_dict() if k.startswith("backbone.")} for m in models.values()]
    assert backbone[0] == backbone[1] and not any(".layer4." in k for k in backbone[0])
    params = [sum(p.numel() for p in m.parameters()) for m in models.values()]
    assert 0.9 < params[0] / params[1] < 1.1  # heads of similar size
    with torch.no_grad():
        for m in models.values():
            assert m(torch.randn(1, 3, 96, 96)).shape == (1, 4, 96, 96)
