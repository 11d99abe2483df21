"""RetinaNet, FCOS, SSD300, SSDlite: torchvision's state_dicts load directly and give the same
detections and losses; anchors and default boxes equal torchvision's exactly; conv+BN folding;
clear errors for anchor configurations that do not fit the head."""
import copy

import pytest
import torch
from torchvision.models import detection as tvd
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator as TVDefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from torchcv.models.backbones.features import FeatureBackbone
from torchcv.models.backbones.fold_bn import fold_conv_bn
from torchcv.models.detectors.retinanet import (FCOS_ANCHOR_SIZES, RETINANET_ANCHOR_SIZES, RetinaNet,
                                                fcos_resnet50_fpn, retinanet_resnet50_fpn)
from torchcv.models.detectors.ssd import SSD, ssd300_vgg16, ssdlite320_mobilenet_v3_large
from torchcv.models.heads.dense_utils import DefaultBoxGenerator
from torchcv.models.heads.det_utils import AnchorGenerator
from torchcv.models.heads.retina_head import RetinaNetHead
from torchcv.registry import MODELS, ConfigError

SMALL = dict(min_size=128, max_size=192)
# non-square, two different sizes in one batch
IMAGES = [torch.rand(3, 150, 200, generator=torch.Generator().manual_seed(3)),
          torch.rand(3, 180, 140, generator=torch.Generator().manual_seed(4))]


def _feature_maps(batch, strides, channels=4):
    return [torch.zeros(1, channels, -(-batch[0] // s), -(-batch[1] // s)) for s in strides]


# ---- anchors and default boxes: exact equality --------------------------------------------------
@pytest.mark.parametrize("sizes,ratios", [(RETINANET_ANCHOR_SIZES, ((0.5, 1.0, 2.0),) * 5),
                                          (FCOS_ANCHOR_SIZES, ((1.0,),) * 5)])
def test_anchor_generator_equals_torchvision(sizes, ratios):
    batch = (224, 320)  # padded batch, not square
    feats = _feature_maps(batch, (8, 16, 32, 64, 128))
    ours = AnchorGenerator(sizes, ratios)(batch, feats, 2)
    ref = TVAnchorGenerator(sizes, ratios)(ImageList(torch.zeros(2, 3, *batch), [batch, batch]), feats)
    assert len(ours) == len(ref) == 2
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("kwargs,size,strides", [
    (dict(aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
          steps=[8, 16, 32, 64, 100, 300]), (300, 300), None),
    (dict(aspect_ratios=[[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95), (320, 320), None),
    (dict(aspect_ratios=[[2], [2, 3], [2, 3]], min_ratio=0.1, max_ratio=0.5, clip=False), (256, 320), (8, 16, 32)),
])
def test_default_boxes_equal_torchvision(kwargs, size, strides):
    if strides is None:  # the maps of torchvision's SSD300 / SSDlite320
        shapes = [38, 19, 10, 5, 3, 1] if size[0] == 300 else [20, 10, 5, 3, 2, 1]
        feats = [torch.zeros(1, 4, s, s) for s in shapes]
    else:
        feats = _feature_maps(size, strides)
    ours = DefaultBoxGenerator(**kwargs)(size, feats)
    ref = TVDefaultBoxGenerator(**kwargs)(ImageList(torch.zeros(1, 3, *size), [size]), feats)[0]
    assert ours.dtype == ref.dtype and torch.equal(ours, ref)
    assert ours.shape[0] == sum(f.shape[-2] * f.shape[-1] * n for f, n in
                                zip(feats, DefaultBoxGenerator(**kwargs).num_anchors_per_location()))


# ---- same weights, same detections ----------------------------------------------------------------
def _spread(tv_model, names, std, seed=1):
    # random-init predictors give near-equal scores whose order is decided by float noise; spread
    # them so the ranking is well defined and detections compare one to one
    g = torch.Generator().manual_seed(seed)
    params = dict(tv_model.named_parameters())
    with torch.no_grad():
        for n in names:
            params[n].copy_(torch.randn(params[n].shape, generator=g) * std)


def _live_ssdlite(tv_model):
    # torchvision's SSDlite init (std 0.03) makes every activation vanish, so every score is equal;
    # He-init the convs and scale the class predictors down so scores are distinct and unsaturated
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in tv_model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
        for block in tv_model.head.classification_head.module_list:
            block[1].weight.mul_(0.02)


def _pair(name):
    torch.manual_seed(0)
    if name == "retinanet":
        tv = tvd.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5, **SMALL)
        _spread(tv, ["head.classification_head.cls_logits.weight", "head.regression_head.bbox_reg.weight"], 0.03)
        ours = retinanet_resnet50_fpn(num_classes=5, norm="bn", trainable_layers=5, fold_bn=False, **SMALL)
    elif name == "fcos":
        tv = tvd.fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5, **SMALL)
        _spread(tv, ["head.classification_head.cls_logits.weight", "head.regression_head.bbox_reg.weight",
                     "head.regression_head.bbox_ctrness.weight"], 0.03)
        ours = fcos_resnet50_fpn(num_classes=5, norm="bn", trainable_layers=5, fold_bn=False, **SMALL)
    elif name == "ssd300":
        tv = tvd.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=5)
        ours = ssd300_vgg16(num_classes=5, fold_bn=False)
    else:
        tv = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
        _live_ssdlite(tv)
        ours = ssdlite320_mobilenet_v3_large(num_classes=5, fold_bn=False)
    ours.load_state_dict(tv.state_dict())  # strict: the same keys
    return tv, ours


MODEL_NAMES = ["retinanet", "fcos", "ssd300", "ssdlite"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_detections_as_torchvision(name):
    tv, ours = _pair(name)
    tv.eval()
    ours.eval()
    with torch.no_grad():
        ref, out = tv(IMAGES), ours(IMAGES)
    for r, o, img in zip(ref, out, IMAGES):
        assert r["boxes"].shape[0] > 0 and r["boxes"].shape == o["boxes"].shape
        torch.testing.assert_close(o["boxes"], r["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(o["scores"], r["scores"], atol=1e-5, rtol=0)
        assert torch.equal(o["labels"], r["labels"])
        assert o["boxes"][:, 2].max() <= img.shape[-1] + 1e-3 and o["boxes"][:, 3].max() <= img.shape[-2] + 1e-3
    # an image without detections: nothing passes the threshold, in either model
    tv.score_thresh = ours.score_thresh = 1.0
    with torch.no_grad():
        ref, out = tv(IMAGES[:1]), ours(IMAGES[:1])
    assert out[0]["boxes"].shape == (0, 4) and out[0]["labels"].dtype == ref[0]["labels"].dtype == torch.int64
    assert out[0]["scores"].shape == ref[0]["scores"].shape == (0,)


TARGETS = [{"boxes": torch.tensor([[10., 20., 100., 140.], [50., 60., 190., 145.], [30., 30., 60., 70.]]),
            "labels": torch.tensor([1, 4, 2])},
           {"boxes": torch.tensor([[5., 5., 130., 170.]]), "labels": torch.tensor([3])},
           {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # no objects


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_losses_as_torchvision(name):
    tv, ours = _pair(name)
    tv.train()
    ours.train()
    images = IMAGES + [torch.rand(3, 160, 160, generator=torch.Generator().manual_seed(5))]
    with torch.no_grad():  # values only (training itself is tested end to end)
        ref = tv(images, TARGETS)
        out = ours(images, TARGETS)
    names = {"classification": "loss_classifier", "bbox_regression": "loss_box_reg", "bbox_ctrness": "loss_centerness"}
    assert set(out) == {names[k] for k in ref}
    for k, v in ref.items():
        torch.testing.assert_close(out[names[k]], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["RetinaNet", "FCOS"])
def test_loss_weights_scale_each_named_loss(kind):
    cfg = {"type": kind, "num_classes": 5, "min_size": 128, "max_size": 160,
           "backbone": {"type": "FeatureBackbone", "arch": "resnet18", "out_indices": [2, 3, 4]},
           "neck": {"out_channels": 64, "extra": "p6p7"}}
    if kind == "RetinaNet":
        cfg["head"] = {"num_convs": 1}
    else:
        cfg["head"] = {"num_convs": 1, "norm_groups": 16}
    torch.manual_seed(0)
    plain = MODELS.build(cfg)
    weights = {"loss_classifier": 4.0, "loss_box_reg": 0.5}
    weighted = MODELS.build({**cfg, "loss_weights": weights})
    weighted.load_state_dict(plain.state_dict())
    plain.train()
    weighted.train()
    images = IMAGES + [torch.rand(3, 160, 160, generator=torch.Generator().manual_seed(5))]
    with torch.no_grad():
        ref, out = plain(images, TARGETS), weighted(images, TARGETS)
    assert set(out) == set(ref)
    for k, v in ref.items():
        assert v > 0
        torch.testing.assert_close(out[k], v * weights.get(k, 1.0))
    with pytest.raises(ConfigError, match=f"{kind}.loss_weights: unknown option 'loss_cls'"):
        MODELS.build({**cfg, "loss_weights": {"loss_cls": 2.0}})
    for bad in ("abc", -2.0, None, True):
        with pytest.raises(ConfigError, match=f"{kind}.loss_weights.loss_box_reg={bad!r}: give a number >= 0"):
            MODELS.build({**cfg, "loss_weights": {"loss_box_reg": bad}})


@pytest.mark.parametrize("kind", ["RetinaNet", "FCOS"])
def test_focal_alpha_and_gamma_reach_the_classification_loss(kind):
    """With the class-logit weights zeroed every class probability is exactly the prior 0.01, so the
    classification loss is pos x f_pos(alpha, gamma) + neg x f_neg(alpha, gamma), with pos = 1 (one
    positive class entry per foreground anchor, divided by the foreground count) and neg the
    normalised count of negative entries. Solve neg from one setting, predict two others exactly."""
    cfg = {"type": kind, "num_classes": 5, "min_size": 128, "max_size": 160,
           "backbone": {"type": "FeatureBackbone", "arch": "resnet18", "out_indices": [2, 3, 4]},
           "neck": {"out_channels": 64, "extra": "p6p7"},
           "head": {"num_convs": 1} if kind == "RetinaNet" else {"num_convs": 1, "norm_groups": 16}}
    torch.manual_seed(0)
    reference = MODELS.build(cfg)
    with torch.no_grad():
        reference.head.classification_head.cls_logits.weight.zero_()
    p = torch.tensor(0.01, dtype=torch.float64)

    def terms(alpha, gamma):
        w_pos, w_neg = (alpha, 1 - alpha) if alpha >= 0 else (1.0, 1.0)
        return w_pos * (1 - p) ** gamma * -torch.log(p), w_neg * p ** gamma * -torch.log(1 - p)

    def loss(alpha, gamma):
        model = MODELS.build({**cfg, "focal_alpha": alpha, "focal_gamma": gamma})
        model.load_state_dict(reference.state_dict())
        model.train()
        with torch.no_grad():
            return model(IMAGES, TARGETS[:2])["loss_classifier"].double()

    pos, neg_term = terms(-1, 0.0)
    neg = (loss(-1, 0.0) - pos) / neg_term  # plain BCE
    for alpha, gamma in [(0.25, 2.0), (0.5, 1.0)]:
        f_pos, f_neg = terms(alpha, gamma)
        torch.testing.assert_close(loss(alpha, gamma), f_pos + neg * f_neg, rtol=1e-4, atol=0)
    with pytest.raises(ConfigError, match=f"{kind}.focal_gamma=-1"):
        MODELS.build({**cfg, "focal_gamma": -1})
    for bad in (1.5, "abc", True):
        with pytest.raises(ConfigError, match=f"{kind}.focal_alpha={bad!r}: give the positives' weight"):
            MODELS.build({**cfg, "focal_alpha": bad})


def test_folded_batchnorm_keeps_keys_and_outputs():
    torch.manual_seed(0)
    plain = retinanet_resnet50_fpn(num_classes=5, fold_bn=False, **SMALL).eval()
    with torch.no_grad():  # non-trivial frozen statistics
        for m in plain.modules():
            if hasattr(m, "running_var"):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.uniform_(-0.5, 0.5)
    folded = copy.deepcopy(plain)
    assert fold_conv_bn(folded.backbone.body) == 53  # every conv -> BN pair of ResNet-50
    assert list(folded.state_dict()) == list(plain.state_dict())
    with torch.no_grad():
        a, b = plain(IMAGES), folded(IMAGES)
    for x, y in zip(a, b):
        torch.testing.assert_close(y["boxes"], x["boxes"], atol=2e-3, rtol=0)
        assert torch.equal(y["labels"], x["labels"])
    twin = copy.deepcopy(folded)  # EMA copies: the copy's convs fold the copy's BNs
    conv = twin.backbone.body["conv1"]
    assert conv.__dict__["folded_bn"] is twin.backbone.body["bn1"]
    # a trainable BN folds only in eval mode: in training it needs the batch statistics
    bn_model = FeatureBackbone("resnet18", out_indices=(4,), norm="bn")
    ref = copy.deepcopy(bn_model)
    fold_conv_bn(bn_model.body)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(bn_model.train()(x)["4"], ref.train()(x)["4"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(bn_model.eval()(x)["4"], ref.eval()(x)["4"], atol=1e-4, rtol=1e-4)


def test_torchvision_version1_retinanet_checkpoint_loads():
    # torchvision's COCO RetinaNet file predates the Conv2dNormActivation towers: conv.0, conv.2 ...
    tv = tvd.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    old = {}
    for k, v in tv.state_dict().items():
        for i in range(4):
            k = k.replace(f"_head.conv.{i}.0.", f"_head.conv.{2 * i}.")
        old[k] = v
    assert "head.classification_head.conv.6.weight" in old
    ours = retinanet_resnet50_fpn(num_classes=3)
    ours.load_state_dict(old)  # no _metadata: treated as version 1, converted
    assert torch.equal(ours.head.classification_head.conv[3][0].weight, tv.head.classification_head.conv[3][0].weight)


# ---- configurations that do not fit ----------------------------------------------------------------
def _light_backbone():
    return FeatureBackbone("resnet18", out_indices=(2, 3, 4))


def test_anchor_and_head_mismatch_is_a_config_error():
    head = RetinaNetHead(256, num_anchors=3, num_classes=5)
    with pytest.raises(ConfigError, match=r"RetinaNet.head predicts 3 anchors per location but the anchors give 9"):
        RetinaNet(_light_backbone(), 5, head=head)
    with pytest.raises(ConfigError, match=r"anchors per location differ between levels \(\[3, 3, 3, 3, 6\]"):
        RetinaNet(_light_backbone(), 5, anchor_sizes=[[32], [64], [128], [256], [512, 600]])
    with pytest.raises(ConfigError, match="anchor_sizes has 3 groups but the FPN gives 5 levels"):
        RetinaNet(_light_backbone(), 5, anchor_sizes=[[32], [64], [128]])
    with pytest.raises(ConfigError, match="FCOS has one point per location"):
        MODELS.build({"type": "FCOS", "backbone": {"type": "FeatureBackbone", "arch": "resnet18",
                                                   "out_indices": [2, 3, 4]}, "num_classes": 3,
                      "anchor_sizes": [[8, 16], [16], [32], [64], [128]]})
    with pytest.raises(ConfigError, match=r"aspect_ratios has 2 groups but the backbone gives 3 feature maps"):
        SSD(_light_backbone(), 5, size=(128, 128), aspect_ratios=[[2], [2]])
    from torchcv.models.heads.ssd_head import SSDHead
    with pytest.raises(ConfigError, match=r"head predicts \[4, 4, 4\] default boxes per location but aspect_ratios give "
                                          r"\[4, 6, 6\]"):
        SSD(_light_backbone(), 5, size=(128, 128), aspect_ratios=[[2], [2, 3], [2, 3]],
            head=SSDHead([128, 256, 512], [4, 4, 4], 5))


def test_fixed_size_resize_scales_boxes_and_keypoints_per_axis():
    from torchcv.models.detectors.det_transform import DetInputTransform
    tf = DetInputTransform(300, 300, [0.0] * 3, [1.0] * 3, size_divisible=1, fixed_size=(100, 200))
    target = {"boxes": torch.tensor([[10.0, 5.0, 30.0, 25.0]]), "labels": torch.tensor([1]),
              "keypoints": torch.tensor([[[10.0, 20.0, 1.0]]])}
    batch, sizes, (t,) = tf([torch.rand(3, 50, 50)], [target])
    assert tuple(batch.shape) == (1, 3, 100, 200) and sizes == [(100, 200)]
    assert t["boxes"].tolist() == [[40.0, 10.0, 120.0, 50.0]]  # x times 4, y times 2
    assert t["keypoints"].tolist() == [[[40.0, 40.0, 1.0]]]
