"""Person keypoints: Keypoint R-CNN parity with torchvision, COCO keypoint data and metadata, the
left/right-swapping flip, OKS evaluation, bad input."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from torchvision.models import detection as tvd

from torchcv.data.datasets.coco import CocoDetection
from torchcv.data.keypoints import COCO_KEYPOINT_NAMES, KeypointHorizontalFlip, KeypointMeta
from torchcv.evaluation.coco import CocoEvaluator
from torchcv.models.detectors.two_stage import keypointrcnn_resnet50_fpn
from torchcv.registry import MODELS, TRANSFORMS, ConfigError
from torchcv.utils.errors import DataError

SMALL = dict(min_size=224, max_size=320, rpn_post_nms_top_n_test=200, box_detections_per_img=20)
OURS_SMALL = dict(min_size=224, max_size=320, rpn=dict(post_nms_top_n_test=200), roi_heads=dict(detections_per_img=20))


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("stick_figures")
    from datasets.generate_stick_figures import generate
    generate(str(out), seed=3, n_train=6, n_val=4, size=128)
    return out


def _ds(root, split="val", **kw):
    return CocoDetection(os.path.join(root, split), os.path.join(root, "annotations", f"person_keypoints_{split}.json"),
                         with_masks=False, with_keypoints=True, **kw)


def _torchvision_pair(norm="frozen_bn"):
    torch.manual_seed(0)
    tv = tvd.keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, **SMALL)
    ours = keypointrcnn_resnet50_fpn(num_classes=2, norm=norm, **OURS_SMALL)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # spread the random predictors so the ranking of detections is well defined
        for lin in (tv.roi_heads.box_predictor.cls_score, tv.roi_heads.box_predictor.bbox_pred):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.01)
        tv.rpn.head.cls_logits.weight.copy_(torch.randn(tv.rpn.head.cls_logits.weight.shape, generator=g) * 0.02)
    ours.load_state_dict(tv.state_dict())  # directly: same keys (roi_heads.keypoint_head / _predictor ...)
    return tv, ours


def test_keypointrcnn_matches_torchvision_in_inference():
    tv, ours = _torchvision_pair()
    tv.eval(), ours.eval()
    images = [torch.rand(3, 200, 260), torch.rand(3, 240, 190)]  # two sizes, non-square
    with torch.no_grad():
        ref, out = tv(images), ours(images)
    for r, o in zip(ref, out):
        assert r["boxes"].shape[0] > 0 and r["boxes"].shape == o["boxes"].shape
        torch.testing.assert_close(o["boxes"], r["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(o["scores"], r["scores"], atol=1e-5, rtol=0)
        torch.testing.assert_close(o["keypoints"], r["keypoints"], atol=1e-4, rtol=0)
        torch.testing.assert_close(o["keypoints_scores"], r["keypoints_scores"], atol=1e-4, rtol=0)
        assert o["keypoints"].shape == (r["boxes"].shape[0], 17, 3)


def test_training_losses_equal_torchvision_and_negatives_give_zero_keypoint_loss():
    tv, ours = _torchvision_pair(norm="bn")  # torchvision trains BatchNorm when built without weights
    tv.train(), ours.train()
    kp = torch.rand(2, 17, 3) * 100 + 40
    kp[..., 2] = 2
    kp[0, :3, 2] = 0  # three unlabelled keypoints
    person = {"boxes": torch.tensor([[30., 30., 150., 180.], [60., 20., 200., 150.]]), "labels": torch.tensor([1, 1]),
              "keypoints": kp}
    nobody = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
              "keypoints": torch.zeros(0, 17, 3)}
    # no batch padding: padded regions give many proposals of equal score, whose order NMS
    # implementations break differently (ours is stable), and the RoI sampling would then differ
    images = [torch.rand(3, 224, 320), torch.rand(3, 224, 320)]
    torch.manual_seed(5)
    ref = tv(images, [dict(person), dict(nobody)])
    torch.manual_seed(5)
    out = ours(images, [dict(person), dict(nobody)])
    assert ref.keys() == out.keys()
    for k in ref:
        # proposals whose float32 objectness ties come out of NMS in another order (ours keeps the
        # index order, torchvision's sort does not promise one), so a few sampled background RoIs
        # differ: the classifier loss agrees to 1e-4, everything else exactly
        tol = dict(rtol=1e-4, atol=1e-5) if k == "loss_classifier" else dict(rtol=0, atol=0)
        torch.testing.assert_close(out[k], ref[k], **tol)
    # only images without a person: the keypoint loss is exactly 0 and still backpropagates
    torch.manual_seed(5)
    neg = ours(images, [dict(nobody), dict(nobody)])
    assert float(neg["loss_keypoint"].detach()) == 0.0 and neg["loss_keypoint"].requires_grad


def test_keypoint_count_mismatch_is_a_clear_error():
    m = MODELS.build({"type": "KeypointRCNN", "num_classes": 2, "num_keypoints": 5, "min_size": 64, "max_size": 64,
                      "backbone": {"type": "FeatureBackbone", "arch": "resnet18", "out_indices": [2, 3, 4]},
                      "neck": {"out_channels": 16}, "anchor_sizes": [[16], [32], [64], [128]],
                      "box_head": {"representation_size": 16}, "keypoint_head": {"layers": [8]}}).train()
    t = {"boxes": torch.tensor([[5., 5., 40., 50.]]), "labels": torch.tensor([1]), "keypoints": torch.ones(1, 17, 3)}
    with pytest.raises(ValueError, match="17 keypoints per instance but the model predicts 5.*num_keypoints to 17"):
        m([torch.rand(3, 64, 64)], [t])
    with pytest.raises(ValueError, match="has no 'keypoints'"):
        m([torch.rand(3, 64, 64)], [{k: v for k, v in t.items() if k != "keypoints"}])


def test_coco_keypoints_metadata_and_targets(figures):
    ds = _ds(figures, "train")
    meta = ds.keypoint_meta
    assert meta.names == COCO_KEYPOINT_NAMES and len(meta.skeleton) == 19 and (15, 13) in meta.skeleton  # 0-based
    assert meta.flip_pairs[:2] == [(1, 2), (3, 4)] and len(meta.flip_pairs) == 8 and len(meta.sigmas) == 17
    raw = json.load(open(os.path.join(figures, "annotations", "person_keypoints_train.json")))
    _, t, m = ds[0]
    anns = [a for a in raw["annotations"] if a["image_id"] == m["image_id"]]
    expected = torch.tensor([a["keypoints"] for a in anns], dtype=torch.float32).view(-1, 17, 3)
    assert t["keypoints"].dtype == torch.float32 and torch.equal(t["keypoints"], expected)


def test_flip_swaps_left_and_right_by_the_metadata(figures):
    flip = [TRANSFORMS.get("RandomHorizontalFlip")(p=1.0)]
    plain, flipped = _ds(figures, "train"), _ds(figures, "train", transforms=flip)
    assert isinstance(flipped.transforms.transforms[0], KeypointHorizontalFlip)
    img, a, _ = plain[1]
    _, b, _ = flipped[1]
    w = img.shape[-1]
    perm = flipped.keypoint_meta.flip_index()
    assert perm[5] == 6 and perm[0] == 0  # left shoulder <-> right shoulder, the nose stays
    lab = a["keypoints"][..., 2] > 0
    # the flipped left shoulder is the mirrored right shoulder (x -> W - x, like the boxes)
    torch.testing.assert_close(b["keypoints"][..., 5, 0][lab[..., 6]], w - a["keypoints"][..., 6, 0][lab[..., 6]])
    torch.testing.assert_close(b["keypoints"][..., 2], a["keypoints"][..., perm, 2])
    torch.testing.assert_close(b["boxes"][:, 0], w - a["boxes"][:, 2])
    # a custom skeleton: its own pairs, not COCO's order
    custom = KeypointMeta.create(["head", "hand_left", "hand_right", "tail"])
    assert custom.flip_pairs == [(1, 2)] and custom.flip_index() == [0, 2, 1, 3] and custom.sigmas == []


def test_keypoints_leaving_the_image_become_invisible(figures):
    crop = [TRANSFORMS.get("RandomCrop")(size=(64, 64))]
    ds = _ds(figures, "train", transforms=crop)
    torch.manual_seed(0)
    _, t, _ = ds[0]
    kp = t["keypoints"]
    outside = (kp[..., 0] < 0) | (kp[..., 1] < 0) | (kp[..., 0] > 64) | (kp[..., 1] > 64)
    assert (kp[..., 2][outside] == 0).all()


def test_ground_truth_fed_back_gives_keypoint_ap_1(figures):
    ds = _ds(figures, "val")
    ev = CocoEvaluator(ds)
    assert ev.iou_types == ["bbox", "keypoints"]
    for i in range(len(ds)):
        _, t, meta = ds[i]
        ev.process([{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"])),
                     "keypoints": t["keypoints"]}], [t], [meta])
    m = ev.compute()
    assert m["keypoints_AP"] == pytest.approx(1.0) and m["keypoints_AP50"] == pytest.approx(1.0)
    assert m["bbox_AP"] == pytest.approx(1.0)
    # a shifted prediction is scored by the dataset's sigmas: larger sigmas, higher OKS
    strict = CocoEvaluator(ds)
    loose = CocoEvaluator(_ds(figures, "val", sigmas=[0.5] * 17))
    for ev in (strict, loose):
        for i in range(len(ds)):
            _, t, meta = ds[i]
            kp = t["keypoints"].clone()
            kp[..., 0] += 4
            ev.process([{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"])),
                         "keypoints": kp}], [t], [meta])
    assert strict.compute()["keypoints_AP"] < loose.compute()["keypoints_AP"] == pytest.approx(1.0)


def _write_ann(figures, tmp_path, edit):
    data = json.load(open(os.path.join(figures, "annotations", "person_keypoints_val.json")))
    edit(data)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_bad_keypoint_input(figures, tmp_path):
    img_dir = os.path.join(figures, "val")

    def bad_visibility(d):
        d["annotations"][0]["keypoints"][2] = 3
    with pytest.raises(DataError, match=r"annotation id 1 has keypoint visibility 3 \(keypoint nose\).*0.*1.*2"):
        CocoDetection(img_dir, _write_ann(figures, tmp_path, bad_visibility), with_masks=False, with_keypoints=True)

    def short(d):
        d["annotations"][0]["keypoints"] = d["annotations"][0]["keypoints"][:-3]
    with pytest.raises(DataError, match="has 48 keypoint values; expected 51"):
        CocoDetection(img_dir, _write_ann(figures, tmp_path, short), with_masks=False, with_keypoints=True)

    def no_names(d):
        for c in d["categories"]:
            c.pop("keypoints"), c.pop("skeleton")
    with pytest.raises(DataError, match="not a keypoint annotation file"):
        CocoDetection(img_dir, _write_ann(figures, tmp_path, no_names), with_masks=False, with_keypoints=True)
    ann = os.path.join(figures, "annotations", "person_keypoints_val.json")
    with pytest.raises(ConfigError, match="2 OKS sigmas for 17 keypoints"):
        CocoDetection(img_dir, ann, with_masks=False, with_keypoints=True, sigmas=[0.1, 0.1])
    with pytest.raises(ConfigError, match=r"flip pair \[1, 17\] must name two different joints in 0..16"):
        CocoDetection(img_dir, ann, with_masks=False, with_keypoints=True, flip_pairs=[[1, 17]])
    with pytest.raises(ConfigError, match=r"skeleton limb \[0, 40\] references a joint outside 0..16"):
        CocoDetection(img_dir, ann, with_masks=False, with_keypoints=True, skeleton=[[0, 40]])
    with pytest.raises(ConfigError, match="keypoint options given without with_keypoints"):
        CocoDetection(img_dir, ann, with_masks=False, sigmas=[0.1] * 17)
    # a keypoint model on data without keypoints, or with another K: one line naming the fix
    from torchcv.tasks.detection import DetectionTask
    task = DetectionTask.__new__(DetectionTask)
    model = type("M", (), {"num_classes": 2, "num_keypoints": 5})()
    with pytest.raises(ConfigError, match="has 17 keypoints per instance.*model.num_keypoints: 17"):
        task.check_compatible(model, _ds(figures, "val"), "train")
    with pytest.raises(ConfigError, match="set with_keypoints: true"):
        task.check_compatible(model, CocoDetection(img_dir, ann, with_masks=False), "train")
