"""Faster/Mask R-CNN: torchvision weight compatibility, training losses, fine-tuning flow."""
import pytest
import torch
from torchvision.models import detection as tvd

from torchcv.engine.checkpoint import load_weights
from torchcv.models.detectors.two_stage import (MaskRCNN, fasterrcnn_mobilenet_v3_large_320_fpn,
                                                fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn)
from torchcv.models.backbones.features import FeatureBackbone

SMALL = dict(min_size=224, max_size=320, rpn_post_nms_top_n_test=200, box_detections_per_img=30)
OURS_SMALL = dict(min_size=224, max_size=320, rpn=dict(post_nms_top_n_test=200),
                  roi_heads=dict(detections_per_img=30))


def _spread_scores(tv_model):
    # random-init predictors give near-identical scores whose order is decided by float noise;
    # larger weights make the ranking well defined so outputs can be compared one to one
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for lin in (tv_model.roi_heads.box_predictor.cls_score, tv_model.roi_heads.box_predictor.bbox_pred):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.05)
        # a little more spread for the RPN too, but unsaturated: sigmoid(large) == 1.0 makes ties whose
        # order NMS implementations may break differently
        tv_model.rpn.head.cls_logits.weight.copy_(torch.randn(tv_model.rpn.head.cls_logits.weight.shape,
                                                              generator=g) * 0.02)


def _compare(tv_model, ours, images, with_masks):
    with torch.no_grad():
        ref = tv_model(images)
        out = ours(images)
    for r, o in zip(ref, out):
        assert r["boxes"].shape[0] > 0
        assert r["boxes"].shape == o["boxes"].shape
        torch.testing.assert_close(o["boxes"], r["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(o["scores"], r["scores"], atol=1e-5, rtol=0)
        assert torch.equal(o["labels"], r["labels"])
        if with_masks:
            torch.testing.assert_close(o["masks"], r["masks"], atol=1e-4, rtol=0)


def test_maskrcnn_resnet50_fpn_matches_torchvision():
    torch.manual_seed(0)
    tv = tvd.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5, **SMALL).eval()
    _spread_scores(tv)
    ours = maskrcnn_resnet50_fpn(num_classes=5, **OURS_SMALL).eval()
    ours.load_state_dict(tv.state_dict())  # direct: same key layout
    _compare(tv, ours, [torch.rand(3, 200, 260), torch.rand(3, 240, 190)], with_masks=True)


def test_fasterrcnn_mobilenet_320_matches_torchvision():
    torch.manual_seed(0)
    tv = tvd.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=4).eval()
    _spread_scores(tv)
    ours = fasterrcnn_mobilenet_v3_large_320_fpn(num_classes=4).eval()
    ours.load_state_dict(tv.state_dict())
    _compare(tv, ours, [torch.rand(3, 200, 260)], with_masks=False)


def _light_maskrcnn(num_classes=3):
    bb = FeatureBackbone("resnet18", out_indices=(2, 3, 4), norm="bn")
    return MaskRCNN(bb, num_classes, neck=dict(out_channels=32), min_size=128, max_size=160,
                    anchor_sizes=[[16], [32], [64], [128]], rpn=dict(batch_size_per_image=64),
                    roi_heads=dict(batch_size_per_image=32), box_head=dict(representation_size=64),
                    mask_head=dict(layers=[32, 32], dim_reduced=32))


def _toy_target():
    masks = torch.zeros(2, 128, 128, dtype=torch.uint8)
    masks[0, 10:50, 20:70] = 1
    masks[1, 60:120, 60:100] = 1
    return {"boxes": torch.tensor([[20., 10., 70., 50.], [60., 60., 100., 120.]]),
            "labels": torch.tensor([1, 2]), "masks": masks}


def test_train_mode_losses_and_learning():
    torch.manual_seed(0)
    model = _light_maskrcnn().train()
    img = torch.rand(3, 128, 128) * 0.2
    img[:, 10:50, 20:70] = 0.9
    img[0, 60:120, 60:100] = 1.0
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    first = last = None
    for it in range(12):
        losses = model([img], [_toy_target()])
        assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask"}
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        first = total.item() if first is None else first
        last = total.item()
    assert last < first
    # an image without objects is valid training input
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 128, 128, dtype=torch.uint8)}
    losses = model([img], [empty])
    assert torch.isfinite(sum(losses.values()))
    model.eval()
    with torch.no_grad():
        out = model([img, torch.rand(3, 100, 140)])
    assert out[1]["masks"].shape[-2:] == (100, 140)


def test_degenerate_box_is_a_clear_error():
    model = _light_maskrcnn().train()
    t = _toy_target()
    t["boxes"][0] = torch.tensor([30., 10., 30., 50.])
    with pytest.raises(ValueError, match="degenerate box"):
        model([torch.rand(3, 128, 128)], [t])


def test_finetune_flow_replaces_predictors(tmp_path):
    tv = tvd.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "coco.pth"
    torch.save(tv.state_dict(), path)
    ours = fasterrcnn_resnet50_fpn(num_classes=3, trainable_layers=3)
    report = load_weights(ours, str(path))
    mism = " ".join(report["mismatched"])
    assert "roi_heads.box_predictor.cls_score.weight" in mism and "bbox_pred" in mism
    assert all("box_predictor" in k or "num_batches_tracked" in k for k in report["missing"] + report["unexpected"])
    assert torch.equal(ours.state_dict()["backbone.fpn.inner_blocks.0.0.weight"],
                       tv.state_dict()["backbone.fpn.inner_blocks.0.0.weight"])
    assert not ours.backbone.body["layer1"][0].conv1.weight.requires_grad
    assert ours.backbone.body["layer2"][0].conv1.weight.requires_grad
