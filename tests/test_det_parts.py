"""Shared detection parts: one feature extractor (taps by level or by name), FPN extra levels like
torchvision's, RoI branches composed from YAML with torchvision's key layout."""
import pytest
import torch
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from torchcv.models.backbones.features import FeatureBackbone
from torchcv.models.necks.fpn import FPN, BackboneWithFPN
from torchcv.registry import MODELS, ConfigError


def test_taps_by_level_and_by_name_agree():
    torch.manual_seed(0)
    by_level = FeatureBackbone("resnet18", out_indices=(2, 4)).eval()
    by_name = FeatureBackbone("resnet18", return_layers={"layer2": "c3", "layer4": "c5"}).eval()
    by_name.load_state_dict(by_level.state_dict())
    x = torch.rand(1, 3, 96, 128)
    a, b = by_level(x), by_name(x)
    assert list(a) == ["2", "4"] and list(b) == ["c3", "c5"]
    assert torch.equal(a["2"], b["c3"]) and torch.equal(a["4"], b["c5"])
    assert by_level.out_channels == [128, 512] and by_level.out_strides == [8, 32]
    assert "fc" not in dict(by_level.named_children()) and list(by_level.body)[-1] == "layer4"
    mb = FeatureBackbone("mobilenet_v3_large", return_layers=["13", "16"])
    assert mb.out_channels == [160, 960] and mb.out_strides == [32, 32] and list(mb.body)[-1] == "16"
    with pytest.raises(ConfigError, match="levels 0..4"):
        FeatureBackbone("resnet18", out_indices=(5,))
    with pytest.raises(ConfigError, match="'resnet81' is not a known architecture.*resnet18"):
        FeatureBackbone("resnet81")


@pytest.mark.parametrize("extra,tv_extra", [("maxpool", LastLevelMaxPool()), ("p6p7", LastLevelP6P7(32, 32)),
                                            ("p6p7_c5", LastLevelP6P7(256, 32))])
def test_fpn_extra_levels_match_torchvision(extra, tv_extra):
    torch.manual_seed(0)
    ours = FPN([64, 128, 256], 32, extra=extra)
    tv = FeaturePyramidNetwork([64, 128, 256], 32, extra_blocks=tv_extra)
    tv.load_state_dict(ours.state_dict())  # same keys, incl. extra_blocks.p6 / p7
    feats = {"0": torch.rand(2, 64, 32, 40), "1": torch.rand(2, 128, 16, 20), "2": torch.rand(2, 256, 8, 10)}
    a, b = ours(feats), tv(feats)
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert ours.num_extra_levels == {"maxpool": 1}.get(extra, 2)


def test_backbone_with_fpn_keeps_torchvision_keys():
    m = BackboneWithFPN(FeatureBackbone("resnet18", out_indices=(2, 3, 4)), fpn_cfg={"out_channels": 16,
                                                                                      "extra": "p6p7"})
    keys = set(m.state_dict())
    assert "body.layer2.0.conv1.weight" in keys and "fpn.extra_blocks.p7.weight" in keys
    assert m.return_layers == ["layer2", "layer3", "layer4"] and m.num_levels == 5
    out = m(torch.rand(1, 3, 128, 128))
    assert list(out) == ["0", "1", "2", "p6", "p7"] and out["p7"].shape[-1] == 1


def test_roi_branches_from_yaml_equal_maskrcnn():
    common = {"backbone": {"type": "FeatureBackbone", "arch": "resnet18", "out_indices": [2, 3, 4]},
              "num_classes": 3, "neck": {"out_channels": 16}, "anchor_sizes": [[16], [32], [64], [128]],
              "box_head": {"representation_size": 32}}
    composed = MODELS.build({"type": "FasterRCNN", **common,
                             "roi_branches": [{"type": "MaskBranch", "layers": [16], "dim_reduced": 8}]})
    mask = MODELS.build({"type": "MaskRCNN", **common, "mask_head": {"layers": [16], "dim_reduced": 8}})
    assert composed.state_dict().keys() == mask.state_dict().keys()
    assert "roi_heads.mask_head.0.0.weight" in composed.state_dict()
    assert composed.roi_heads.has_mask and not MODELS.build({"type": "FasterRCNN", **common}).roi_heads.has_mask
    with pytest.raises(ConfigError, match="not an RoI branch"):
        MODELS.build({"type": "FasterRCNN", **common, "roi_branches": [{"type": "FCNHead", "in_channels": 4,
                                                                         "num_classes": 2}]})
    with pytest.raises(ConfigError, match="mask_head options given to a model without masks"):
        MODELS.build({"type": "FasterRCNN", **common, "mask_head": {"layers": [16]}})
