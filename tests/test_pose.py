"""Heatmap pose models (CPM, OpenPose): targets on hand-made skeletons (exact values), flip-aware
targets, grouping that recovers the people of ground-truth maps exactly, the models' contract,
PCK / PCKh against hand-computed values, crops and ignore masks."""
import json
import math
import os

import numpy as np
import pytest
import torch

from torchcv.data.datasets.coco_pose import CocoPose
from torchcv.data.datasets.pose_crops import PoseCrops, apply_affine, crop_affine
from torchcv.data.keypoints import COCO_SKELETON, KeypointMeta, COCO_KEYPOINT_NAMES
from torchcv.evaluation.pose import PCKEvaluator, keypoints_to_image
from torchcv.models.pose.cpm import CPM
from torchcv.models.pose.grouping import find_peaks, group_people
from torchcv.models.pose.openpose import OpenPose, resample_to_grid
from torchcv.models.pose.targets import (flip_heatmaps, flip_pafs, gaussian_heatmaps, limb_flip_index,
                                         part_affinity_fields)
from torchcv.models.pose.trunks import PoseLightTrunk
from torchcv.registry import ConfigError, TRANSFORMS
from torchcv.utils.errors import DataError, MissingFileError

FLIP = KeypointMeta.create(COCO_KEYPOINT_NAMES).flip_index()


# ---- targets ------------------------------------------------------------------------------------
def test_heatmaps_exact_values_max_merged_with_background():
    # grid 2 x 4, stride 4: cell centres x = 2, 6, 10, 14 and y = 2, 6; sigma 2
    kp = torch.tensor([[[6.0, 2.0, 2], [0.0, 0.0, 0]],     # person 1: keypoint 0 on cell (0, 1); keypoint 1 unlabelled
                       [[10.0, 2.0, 1], [14.0, 6.0, 2]]])  # person 2: keypoint 0 on cell (0, 2) (hidden still counts)
    maps = gaussian_heatmaps(kp, (2, 4), stride=4, sigma=2.0)
    assert maps.shape == (3, 2, 4)
    e = math.exp
    # keypoint 0: max of the two Gaussians; d^2 = 16 one cell away -> exp(-16 / 8) = exp(-2)
    expected0 = torch.tensor([[e(-2), 1.0, 1.0, e(-2)],
                              [e(-4), e(-2), e(-2), e(-4)]])
    torch.testing.assert_close(maps[0], expected0, rtol=0, atol=1e-6)
    expected1 = torch.tensor([[e(-(144 + 16) / 8), e(-(64 + 16) / 8), e(-(16 + 16) / 8), e(-2)],
                              [e(-144 / 8), e(-64 / 8), e(-2), 1.0]])
    torch.testing.assert_close(maps[1], expected1, rtol=0, atol=1e-6)
    torch.testing.assert_close(maps[2], 1 - torch.maximum(expected0, expected1), rtol=0, atol=1e-6)
    # no people: zero keypoint maps, background 1
    empty = gaussian_heatmaps(torch.zeros(0, 2, 3), (2, 4), 4, 2.0)
    assert empty[:2].abs().sum() == 0 and (empty[2] == 1).all()


def test_pafs_exact_unit_vectors_width_and_averaging():
    # limb (0, 1); grid 4 x 4, stride 4: centres 2, 6, 10, 14
    horizontal = [[2.0, 2.0, 2], [14.0, 2.0, 2]]   # along row 0
    vertical = [[2.0, 2.0, 2], [2.0, 14.0, 2]]     # along column 0
    paf = part_affinity_fields(torch.tensor([horizontal]), [(0, 1)], (4, 4), stride=4, width=1.0)
    expected_x = torch.zeros(4, 4)
    expected_x[0, :] = 1.0                          # cells on the segment; row 1 is 4 px away > width
    torch.testing.assert_close(paf[0], expected_x, rtol=0, atol=0)
    assert paf[1].abs().sum() == 0
    wide = part_affinity_fields(torch.tensor([horizontal]), [(0, 1)], (4, 4), stride=4, width=4.0)
    assert (wide[0, :2] == 1).all() and (wide[0, 2:] == 0).all()   # |across| <= 4 takes row 1 too
    both = part_affinity_fields(torch.tensor([horizontal, vertical]), [(0, 1)], (4, 4), stride=4, width=1.0)
    # the cell both limbs cover holds their average, the others their own unit vector
    assert both[0, 0, 0] == 0.5 and both[1, 0, 0] == 0.5
    assert (both[0, 0, 1:] == 1).all() and (both[1, 1:, 0] == 1).all()
    # an unlabelled end: no field
    half = part_affinity_fields(torch.tensor([[[2.0, 2.0, 2], [14.0, 2.0, 0]]]), [(0, 1)], (4, 4), 4, 1.0)
    assert half.abs().sum() == 0
    # a diagonal limb: unit vector (1, 1)/sqrt(2) where the cell centre is within the band
    diag = part_affinity_fields(torch.tensor([[[2.0, 2.0, 2], [14.0, 14.0, 2]]]), [(0, 1)], (4, 4), 4, 1.0)
    r = 1 / math.sqrt(2)
    eye = torch.eye(4)
    torch.testing.assert_close(diag[0], eye * r, rtol=0, atol=1e-6)
    torch.testing.assert_close(diag[1], eye * r, rtol=0, atol=1e-6)


def test_targets_of_a_mirrored_image_are_the_mirrored_targets_with_left_right_swapped():
    g = torch.Generator().manual_seed(0)
    W, H, stride = 64, 48, 8
    kp = torch.rand(2, 17, 3, generator=g) * torch.tensor([W, H, 1.0])
    kp[..., 2] = 2
    kp[0, 3, 2] = 0
    mirrored = kp.clone()
    mirrored[..., 0] = W - kp[..., 0]               # x -> W - x, as KeypointHorizontalFlip does
    mirrored = mirrored[:, FLIP]                     # and left <-> right
    grid = (H // stride, W // stride)
    heat, heat_m = gaussian_heatmaps(kp, grid, stride, 5.0), gaussian_heatmaps(mirrored, grid, stride, 5.0)
    torch.testing.assert_close(flip_heatmaps(heat_m, FLIP), heat, rtol=0, atol=1e-6)
    paf = part_affinity_fields(kp, COCO_SKELETON, grid, stride, 6.0)
    paf_m = part_affinity_fields(mirrored, COCO_SKELETON, grid, stride, 6.0)
    torch.testing.assert_close(flip_pafs(paf_m, COCO_SKELETON, FLIP), paf, rtol=0, atol=1e-6)
    # COCO's (left_hip, right_hip) mirrors onto itself the other way round: the field changes sign
    limb = COCO_SKELETON.index((11, 12))
    assert limb_flip_index(COCO_SKELETON, FLIP)[limb] == (limb, -1.0)
    with pytest.raises(ConfigError, match="not symmetric"):
        limb_flip_index([(5, 7)], FLIP)              # left arm without the right one


# ---- grouping -----------------------------------------------------------------------------------
def _figures(specs, seed=0):
    from datasets.generate_stick_figures import pose
    rng = np.random.default_rng(seed)
    people = []
    for cx, cy, h in specs:
        j, _ = pose(rng, np.array([cx, cy], float), h)
        people.append(torch.tensor([[x, y, 2.0] for x, y in j], dtype=torch.float32))
    return torch.stack(people)


def test_grouping_recovers_the_people_of_ground_truth_maps_exactly():
    people = _figures([(50, 140, 140), (150, 120, 150), (250, 140, 130)], seed=3)
    people[2, 9, 2] = 0                               # a wrist not labelled: not found, reported as missing
    grid, stride = (32, 40), 8
    heat = gaussian_heatmaps(people, grid, stride, 6.0)[:-1]
    paf = part_affinity_fields(people, COCO_SKELETON, grid, stride, 8.0)
    out = group_people(heat, paf, COCO_SKELETON, stride, image_height=256)
    assert out["keypoints"].shape == (3, 17, 3)
    # match each found person to the ground truth by its nose
    order = [int(torch.argmin((people[:, 0, :2] - p[0, :2]).norm(dim=1))) for p in out["keypoints"]]
    assert sorted(order) == [0, 1, 2]
    for p, i in zip(out["keypoints"], order):
        labelled = people[i, :, 2] > 0
        torch.testing.assert_close(p[labelled, :2], people[i, labelled, :2], rtol=0, atol=1e-3)
        assert (p[:, 2] == labelled.float()).all()
    assert (out["labels"] == 1).all() and (out["scores"][:-1] >= out["scores"][1:]).all()
    boxes = out["boxes"]
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
    # people need min_parts keypoints: asking for all 17 drops the one with a missing wrist
    strict = group_people(heat, paf, COCO_SKELETON, stride, 256, min_parts=17)
    assert len(strict["keypoints"]) == 2


def test_peaks_are_refined_below_a_cell_and_nothing_is_found_on_empty_maps():
    kp = torch.tensor([[[13.3, 21.7, 2]]])
    maps = gaussian_heatmaps(kp, (8, 8), 8, 7.0, background=False)
    peaks = find_peaks(maps, 8)
    assert len(peaks[0]) == 1
    torch.testing.assert_close(peaks[0][0, :2], torch.tensor([13.3, 21.7]), rtol=0, atol=1e-3)
    empty = group_people(torch.zeros(17, 8, 8), torch.zeros(38, 8, 8), COCO_SKELETON, 8, 64)
    assert empty["keypoints"].shape == (0, 17, 3) and empty["scores"].shape == (0,)


# ---- models -------------------------------------------------------------------------------------
def _light_openpose(**kw):
    return OpenPose(PoseLightTrunk([8, 16, 16], [1, 1, 1]), feature_channels=[16], stages=2, stage1_channels=16,
                    stage1_layers=1, stage1_hidden=16, stage_channels=16, stage_layers=1, stage_kernel=3, norm=True,
                    **kw)


def test_openpose_losses_are_masked_where_people_are_not_labelled():
    torch.manual_seed(0)
    model = _light_openpose()
    kp = _figures([(30, 40, 50)])
    ignore = torch.zeros(64, 64, dtype=torch.uint8)
    ignore[:, 32:] = 1
    paf, heat, weight = model.build_targets([{"keypoints": kp, "ignore_mask": ignore}], (8, 8), (64, 64))
    assert paf.shape == (1, 38, 8, 8) and heat.shape == (1, 18, 8, 8) and weight.shape == (1, 1, 8, 8)
    assert (weight[0, 0, :, :4] == 1).all() and (weight[0, 0, :, 4:] == 0).all()
    model.train()
    images = torch.rand(2, 3, 60, 60)                 # not a multiple of the stride: padded inside
    losses = model(images, [{"keypoints": kp, "ignore_mask": ignore[:60, :60]}, {"keypoints": torch.zeros(0, 17, 3)}])
    assert set(losses) == {"loss_paf", "loss_heatmap"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["keypoints"].shape[1:] == (17, 3) and out[0]["pafs"].shape == (38, 8, 8)


def test_openpose_flip_test_is_mirror_symmetric_and_scales_resample_exactly():
    torch.manual_seed(0)
    model = _light_openpose(flip_test=True, test_scales=[1.0, 0.75]).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        heat, paf = model.predict_maps(x)
        heat_m, paf_m = model.predict_maps(x.flip(-1))
    # averaging an image with its mirror: the mirrored image's maps are the same maps, mirrored and swapped
    torch.testing.assert_close(flip_heatmaps(heat_m, model.flip_index), heat, rtol=0, atol=1e-4)
    torch.testing.assert_close(flip_pafs(paf_m, model.skeleton, model.flip_index), paf, rtol=0, atol=1e-4)
    maps = torch.rand(1, 3, 4, 6)
    torch.testing.assert_close(resample_to_grid(maps, (1.0, 1.0), (4, 6), shift=0.0), maps)
    # maps of a 2x input sampled at the base cell centres: base cell j sits between scaled cells 2j and 2j+1
    big = torch.arange(8 * 12, dtype=torch.float32).reshape(1, 1, 8, 12)
    small = resample_to_grid(big, (2.0, 2.0), (4, 6))
    torch.testing.assert_close(small, torch.nn.functional.avg_pool2d(big, 2))


def test_cpm_intermediate_supervision_and_argmax_in_crop_pixels():
    torch.manual_seed(0)
    model = CPM(num_keypoints=4, stages=3, image_channels=[8, 8, 8], image_kernel=3, stage1_channels=[8],
                stage1_kernels=[1], feature_channels=4, feature_kernel=3, stage_channels=8, stage_kernel=3,
                stage_layers=1, norm=True, sigma=4.0)
    assert len(model.refine) == 2 and model.stride == 8
    kp = torch.tensor([[[10.0, 12.0, 2], [30.0, 40.0, 2], [50.0, 20.0, 1], [0.0, 0.0, 0]]])
    model.train()
    images = torch.rand(2, 3, 64, 64)
    losses = model(images, [{"keypoints": kp}, {"keypoints": kp}])
    assert list(losses) == ["loss_heatmap"] and torch.isfinite(losses["loss_heatmap"])
    # intermediate supervision: the loss is the sum of every stage's L2 error against the same beliefs
    outs = model.stage_outputs(images)
    assert len(outs) == 3 and all(o.shape == (2, 5, 8, 8) for o in outs)
    target = gaussian_heatmaps(kp, (8, 8), 8, 4.0).expand(2, -1, -1, -1)
    expected = sum(((o - target) ** 2).sum() / 4 for o in outs)     # half the squared error per image
    torch.testing.assert_close(losses["loss_heatmap"], expected, rtol=1e-5, atol=1e-4)
    # decoding: ground-truth beliefs give back the keypoints (to well below a pixel)
    from torchcv.models.pose.cpm import decode_argmax
    beliefs = gaussian_heatmaps(kp[:, :3], (8, 8), 8, 6.0, background=False)
    dec = decode_argmax(beliefs, 8)
    torch.testing.assert_close(dec["keypoints"][0, :, :2], kp[0, :3, :2], rtol=0, atol=1e-3)


def test_model_metadata_errors():
    with pytest.raises(ConfigError, match="model.skeleton"):
        _light_openpose(num_keypoints=5)
    with pytest.raises(ConfigError, match="outside 0..4"):
        _light_openpose(num_keypoints=5, skeleton=[[0, 7]])
    with pytest.raises(ConfigError, match="flip_pairs"):
        CPM(num_keypoints=5, flip_test=True)


# ---- evaluation ---------------------------------------------------------------------------------
class _Crops:
    """A stand-in dataset with two annotated people (image coordinates)."""

    def __init__(self):
        names = ["head", "left_shoulder", "right_hip"]
        self.keypoint_meta = KeypointMeta.create(names, [(0, 1)], [], [])
        self.gt = [{"joints": np.array([[10, 10, 2], [20, 30, 2], [40, 60, 1]], np.float32),
                    "bbox": [10, 10, 30, 50], "head_box": [0, 0, 6, 8]},
                   {"joints": np.array([[100, 100, 2], [110, 110, 0], [120, 150, 2]], np.float32),
                    "bbox": [100, 100, 20, 50], "head_box": [90, 90, 102, 106]}]

    def ground_truth(self, i):
        return self.gt[i]


def test_pck_and_pckh_against_hand_computed_values():
    ds = _Crops()
    ev = PCKEvaluator(ds, alpha=0.2, normalize="bbox")
    # sample 0: bbox size 50 -> threshold 10; head size 0.6 * 10 = 6 -> PCKh threshold 3
    # sample 1: bbox size 50 -> threshold 10; head size 0.6 * 20 = 12 -> PCKh threshold 6
    pred0 = [[10, 12, 1], [20, 39, 1], [40, 71, 1]]       # errors 2, 9, 11
    pred1 = [[105, 100, 1], [0, 0, 1], [120, 154, 1]]     # errors 5, (unlabelled), 4
    metas = [{"index": i, "path": f"{i}.png", "orig_size": (200, 200), "input_size": (200, 200)} for i in (0, 1)]
    ev.process([{"keypoints": torch.tensor([pred0], dtype=torch.float32)},
                {"keypoints": torch.tensor([pred1], dtype=torch.float32)}], None, metas)
    m = ev.compute()
    assert m["PCK"] == pytest.approx(4 / 5)                # 2, 9 | 5, 4 within 10; 11 not
    assert m["PCK/head"] == 1.0 and m["PCK/left_shoulder"] == 1.0 and m["PCK/right_hip"] == 0.5
    assert m["PCKh"] == pytest.approx(3 / 5)               # 2 <= 3 (head 0); 5, 4 <= 6 (head, hip 1)
    assert m["PCKh/head"] == 1.0 and m["PCKh/right_hip"] == 0.5 and m["PCKh/left_shoulder"] == 0.0
    torso = PCKEvaluator(ds, alpha=0.2, normalize="torso")  # torso = |left_shoulder - right_hip|
    torso.process([{"keypoints": torch.tensor([pred0], dtype=torch.float32)}], None, metas[:1])
    size = math.hypot(20, 30)                              # sample 1 has no labelled shoulder: left out
    assert torso.compute()["PCK"] == pytest.approx(sum(e <= 0.2 * size for e in (2, 9, 11)) / 3)
    assert "PCK" in ev.report() and "mean" in ev.report()


def test_predictions_map_back_through_the_crop():
    affine = crop_affine((120.0, 80.0), side=100.0, rotation=30.0, out_size=(64, 64))
    pts = np.array([[120.0, 80.0], [150.0, 60.0], [90.5, 130.25]])
    crop_pts = apply_affine(affine, pts)
    assert np.allclose(crop_pts[0], [32, 32])               # the centre lands in the middle of the crop
    back = keypoints_to_image(np.concatenate([crop_pts, np.ones((3, 1))], 1), {"crop_affine": affine.tolist()})
    assert np.allclose(back[:, :2], pts, atol=1e-9)


# ---- data ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("pose_figures")
    from datasets.generate_stick_figures import generate
    generate(str(out), seed=5, n_train=4, n_val=3, size=96)
    return out


def test_generator_writes_crops_of_the_same_figures(figures):
    coco = json.load(open(figures / "annotations" / "person_keypoints_val.json"))
    crops = json.load(open(figures / "annotations" / "crops_val.json"))
    assert crops["keypoints"] == COCO_KEYPOINT_NAMES and len(crops["annotations"]) == len(coco["annotations"])
    by_image = {im["id"]: im["file_name"] for im in coco["images"]}
    for ann, crop in zip(coco["annotations"], crops["annotations"]):
        assert crop["image"] == by_image[ann["image_id"]]
        assert [v for j in crop["joints"] for v in j] == ann["keypoints"]
        x1, y1, x2, y2 = crop["head_box"]
        assert x2 > x1 and y2 > y1 and crop["scale"] > 0


def test_pose_crops_items_follow_the_crop_and_flip_swaps_left_right(figures):
    ds = PoseCrops(str(figures / "val"), str(figures / "annotations" / "crops_val.json"), input_size=64)
    image, target, meta = ds[0]
    assert image.shape == (3, 64, 64) and target["keypoints"].shape == (1, 17, 3)
    gt = ds.ground_truth(0)["joints"]
    expect = apply_affine(np.asarray(meta["crop_affine"]), gt[:, :2])
    lab = target["keypoints"][0, :, 2] > 0
    assert np.allclose(target["keypoints"][0, lab, :2].numpy(), expect[lab.numpy()], atol=1e-4)
    back = keypoints_to_image(target["keypoints"][0], meta)
    assert np.allclose(back[lab.numpy(), :2], gt[lab.numpy(), :2], atol=1e-3)
    flipped = PoseCrops(str(figures / "val"), str(figures / "annotations" / "crops_val.json"), input_size=64,
                        transforms=[TRANSFORMS.get("RandomHorizontalFlip")(p=1.0)])
    _, ft, _ = flipped[0]
    mirrored = target["keypoints"][0].clone()
    mirrored[:, 0] = 64 - mirrored[:, 0]
    torch.testing.assert_close(ft["keypoints"][0][lab[FLIP]], mirrored[FLIP][lab[FLIP]], rtol=0, atol=1e-4)


def _coco_with_crowd(figures, tmp_path):
    data = json.load(open(figures / "annotations" / "person_keypoints_train.json"))
    first = data["images"][0]["id"]
    nxt = max(a["id"] for a in data["annotations"]) + 1
    data["annotations"] += [
        {"id": nxt, "image_id": first, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 10, 10], "area": 100,
         "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "keypoints": [0] * 51, "num_keypoints": 0},
        {"id": nxt + 1, "image_id": first, "category_id": 1, "iscrowd": 0, "bbox": [60, 60, 20, 30], "area": 600,
         "keypoints": [0] * 51, "num_keypoints": 0}]       # a person without keypoints and without an outline
    path = tmp_path / "kp.json"
    path.write_text(json.dumps(data))
    return path, data["images"][0]["file_name"]


def test_coco_pose_ignores_crowds_and_unlabelled_people(figures, tmp_path):
    ann, name = _coco_with_crowd(figures, tmp_path)
    ds = CocoPose(str(figures / "train"), str(ann))
    _, target, meta = ds[0]
    assert meta["path"].endswith(name)
    m = target["ignore_mask"]
    assert m.shape == (96, 96) and m[2:9, 2:9].all() and m[61:89, 61:79].all()
    assert int(m.sum()) == int(m[:11, :11].sum() + m[60:90, 60:80].sum())
    assert ds.stats["ignored_regions"] == 2
    # the crowd is no person of the target; the unlabelled one is, with no labelled keypoint
    assert target["keypoints"].shape[0] == len([a for a in ds.coco.imgToAnns[ds.records[0]["image_id"]]
                                                 if not a.get("iscrowd")])
    plain = CocoPose(str(figures / "train"), str(ann), ignore_crowds=False, ignore_unlabelled=False)
    assert "ignore_mask" not in plain[0][1]


def test_coco_pose_mask_files(figures, tmp_path):
    import cv2
    masks = tmp_path / "masks"
    masks.mkdir()
    ann = figures / "annotations" / "person_keypoints_val.json"
    files = [im["file_name"] for im in json.load(open(ann))["images"]]
    for f in files:
        m = np.zeros((96, 96), np.uint8)
        m[:5, :7] = 255
        cv2.imwrite(str(masks / (os.path.splitext(f)[0] + ".png")), m)
    ds = CocoPose(str(figures / "val"), str(ann), mask_dir=str(masks))
    m = ds[0][1]["ignore_mask"]
    assert int(m.sum()) == 35 and m[:5, :7].all()
    cv2.imwrite(str(masks / (os.path.splitext(files[0])[0] + ".png")), np.zeros((50, 96), np.uint8))
    with pytest.raises(DataError, match=r"ignore mask is 96x50 \(WxH\) but its image .* is 96x96"):
        ds[0]
    os.remove(masks / (os.path.splitext(files[0])[0] + ".png"))
    with pytest.raises(MissingFileError, match="ignore mask not found"):
        ds[0]


def test_crop_annotation_errors(tmp_path, figures):
    good = json.load(open(figures / "annotations" / "crops_val.json"))
    bad = dict(good, annotations=[{k: v for k, v in good["annotations"][0].items() if k != "scale"}])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"annotation 0 \(image val_00000.png\) has no 'center'/'scale'"):
        PoseCrops(str(figures / "val"), str(path))
    bad = dict(good, skeleton=[[0, 17]])
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"skeleton limb \[0, 17\] references a joint outside 0..16"):
        PoseCrops(str(figures / "val"), str(path))
    mpii_style = [{"image": good["annotations"][0]["image"], "center": [40, 40], "scale": 0.3,
                   "joints": [[10, 10]] * 16, "joints_vis": [1] * 15 + [0]}]
    path.write_text(json.dumps(mpii_style))
    ds = PoseCrops(str(figures / "val"), str(path), keypoint_names="mpii", input_size=32)
    assert ds.keypoint_meta.num_keypoints == 16 and ds.ground_truth(0)["joints"][15, 2] == 0
    assert (6, 3) in ds.keypoint_meta.skeleton and (0, 5) in [tuple(sorted(p)) for p in ds.keypoint_meta.flip_pairs]


# ---- configs and converters ---------------------------------------------------------------------
@pytest.mark.parametrize("config", ["configs/pose/shapes/cpm_light_shapes.yaml",
                                    "configs/pose/shapes/openpose_light_shapes.yaml",
                                    "configs/pose/coco/openpose_vgg19_coco.yaml", "configs/pose/coco/cpm_coco.yaml",
                                    "configs/pose/mpii/cpm_mpii.yaml", "configs/pose/mpii/openpose_vgg19_mpii.yaml"])
def test_pose_configs_load_and_build(config):
    from torchcv.config import load_config
    from torchcv.registry import TASKS
    cfg = load_config(config, [])
    model = TASKS.get(cfg["task"])(cfg).build_model()
    assert model.stride == 8
    if isinstance(model, OpenPose):
        assert len(model.paf_stages[0][-1].weight) == 2 * len(model.skeleton)


def test_mpii_to_coco_groups_people_by_image(figures):
    from datasets.mpii2coco import mpii_to_coco
    img = json.load(open(figures / "annotations" / "crops_val.json"))["annotations"][0]["image"]
    entries = [{"image": img, "center": [40, 40], "scale": 0.3, "joints": [[10 + i, 20, 0] for i in range(16)],
                "joints_vis": [1] * 14 + [0, 0], "head_box": [5, 5, 15, 17]},
               {"image": img, "center": [60, 40], "scale": 0.3, "joints": [[50, 30 + i] for i in range(16)],
                "joints_vis": [1] * 16}]
    coco = mpii_to_coco(entries, str(figures / "val"))
    assert len(coco["images"]) == 1 and coco["images"][0]["width"] == 96
    a, b = coco["annotations"]
    assert a["num_keypoints"] == 14 and a["keypoints"][:3] == [10, 20, 2] and a["keypoints"][-1] == 0
    assert a["bbox"] == [5, 5, 18, 15] and a["area"] == 270          # joints 10..23 x 20, head box 5..15 x 5..17
    assert b["bbox"] == [50, 30, 0, 15] and coco["categories"][0]["keypoints"][0] == "r_ankle"
    assert [1, 2] in coco["categories"][0]["skeleton"]


def test_paf_and_heatmap_pictures():
    from torchcv.visualization_pose import heatmap_colour, montage, overlay, paf_colour
    paf = torch.zeros(4, 2, 3)                   # two limbs on a 2 x 3 grid
    paf[0, 0, 0] = 1.0                            # limb 0 points right at cell (0, 0)
    paf[3, 1, 2] = 0.5                            # limb 1 points down at cell (1, 2), half length
    pic = paf_colour(paf)
    assert pic.shape == (2, 3, 3) and tuple(pic[0, 0]) == (255, 0, 0)     # right = hue 0, full brightness
    assert pic[1, 2].max() in (127, 128) and pic[1, 2, 0] < pic[1, 2, 1]   # down = hue 90 deg, half bright
    assert pic[0, 1].max() == 0                                             # no field: black
    image = np.full((20, 30, 3), 200, np.uint8)
    kept = overlay(image, pic, alpha=0.9, by_brightness=True)
    assert (kept[19, 0] == 200).all() and kept[0, 0, 0] > kept[0, 0, 1]    # empty field leaves the image
    assert heatmap_colour(torch.zeros(2, 4, 4)).shape == (4, 4, 3)
    assert montage([image, image, image], columns=2, side=40).shape == (80, 120, 3)
