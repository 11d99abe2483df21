"""Detection data: generator, COCO dataset (+ bad input), transforms, grouped sampler, evaluator."""
import json
import os
import subprocess
import sys

import pytest
import torch

from torchcv.data.datasets.coco import CocoDetection
from torchcv.data.group_sampler import GroupedBatchSampler, aspect_ratio_bins
from torchcv.evaluation.coco import CocoEvaluator
from torchcv.registry import TRANSFORMS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes_det")
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out", str(out),
                    "--train", "12", "--val", "6", "--seed", "3"], check=True, capture_output=True)
    return str(out)


def _ds(root, split="val", **kw):
    return CocoDetection(os.path.join(root, split), os.path.join(root, "annotations", f"instances_{split}.json"), **kw)


def test_generator_is_deterministic_and_complete(shapes, tmp_path):
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out", str(tmp_path),
                    "--train", "12", "--val", "6", "--seed", "3"], check=True, capture_output=True)
    a = json.load(open(os.path.join(shapes, "annotations/instances_train.json")))
    b = json.load(open(os.path.join(tmp_path, "annotations/instances_train.json")))
    assert a == b
    assert len(a["categories"]) == 4 and all(len(c["keypoints"]) == 5 for c in a["categories"])
    assert all(len(x["keypoints"]) == 15 for x in a["annotations"])
    assert any(isinstance(x["segmentation"], dict) for x in a["annotations"]) or len(a["annotations"]) < 30


def test_dataset_item_contract(shapes):
    ds = _ds(shapes, "train")
    img, t, meta = ds[0]
    assert img.dtype == torch.float32 and img.shape[0] == 3 and 0 <= img.min() and img.max() <= 1
    n = len(t["boxes"])
    assert n > 0 and t["labels"].shape == (n,) and t["masks"].shape == (n, *img.shape[-2:])
    assert t["masks"].dtype == torch.uint8 and (t["boxes"][:, 2:] > t["boxes"][:, :2]).all()
    assert set(t) >= {"boxes", "labels", "masks", "image_id", "area", "iscrowd"}
    assert meta["orig_size"] == tuple(img.shape[-2:]) and meta["image_id"] == int(t["image_id"])
    # boxes and masks agree: every mask lies inside its box
    for b, m in zip(t["boxes"], t["masks"]):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert xs.min() >= b[0] - 1 and xs.max() <= b[2] and ys.min() >= b[1] - 1 and ys.max() <= b[3]


def test_transforms_move_boxes_and_masks(shapes):
    tfs = [TRANSFORMS.get("RandomHorizontalFlip")(p=1.0), TRANSFORMS.get("KeepRatioResize")(min_size=128, max_size=200)]
    ds, plain = _ds(shapes, "train", transforms=tfs), _ds(shapes, "train")
    img, t, meta = ds[0]
    img0, t0, _ = plain[0]
    h0, w0 = img0.shape[-2:]
    assert min(img.shape[-2:]) == 128 or max(img.shape[-2:]) == 200
    s = img.shape[-1] / w0
    flipped = torch.stack([w0 - t0["boxes"][:, 2], t0["boxes"][:, 1], w0 - t0["boxes"][:, 0], t0["boxes"][:, 3]], 1) * s
    torch.testing.assert_close(t["boxes"], flipped, atol=1.5, rtol=0)
    assert t["masks"].shape[-2:] == img.shape[-2:] and meta["input_size"] == tuple(img.shape[-2:])


def _write(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def test_bad_input(shapes, tmp_path, caplog):
    ann = json.load(open(os.path.join(shapes, "annotations/instances_val.json")))
    img_dir = os.path.join(shapes, "val")
    # corrupt JSON: clear error with the position
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(ann)[:-40])
    with pytest.raises(ValueError, match="not valid JSON"):
        CocoDetection(img_dir, str(bad))
    # unknown category id
    a = json.loads(json.dumps(ann))
    a["annotations"][0]["category_id"] = 77
    _write(tmp_path / "cat.json", a)
    with pytest.raises(ValueError, match="category_id 77"):
        CocoDetection(img_dir, str(tmp_path / "cat.json"))
    ds = CocoDetection(img_dir, str(tmp_path / "cat.json"), unknown_category="skip")
    assert ds.stats["unknown_category_annotations"] == 1
    # missing image
    a = json.loads(json.dumps(ann))
    a["images"][1]["file_name"] = "nope.png"
    _write(tmp_path / "miss.json", a)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        CocoDetection(img_dir, str(tmp_path / "miss.json"))
    assert len(CocoDetection(img_dir, str(tmp_path / "miss.json"), missing_images="skip")) == len(ann["images"]) - 1
    # degenerate / out-of-image boxes, image without annotations
    a = json.loads(json.dumps(ann))
    first = a["images"][0]["id"]
    a["annotations"] = [x for x in a["annotations"] if x["image_id"] != first]
    a["annotations"][0]["bbox"] = [10, 10, 0, 5]                                  # degenerate
    a["annotations"][1]["bbox"][0] = -20.0                                        # partly outside: clipped
    a["annotations"][2]["bbox"] = [5000, 5000, 10, 10]                            # fully outside: dropped
    _write(tmp_path / "boxes.json", a)
    keep = CocoDetection(img_dir, str(tmp_path / "boxes.json"), with_masks=False)
    skip = CocoDetection(img_dir, str(tmp_path / "boxes.json"), with_masks=False, skip_empty=True)
    assert keep.stats["dropped_boxes"] == 2 and keep.stats["clipped_boxes"] == 1
    assert len(keep) == len(ann["images"]) and len(skip) == len(ann["images"]) - 1
    assert skip.stats["skipped_empty_images"] == 1
    img, t, _ = keep[0]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,)


def test_grouped_sampler_resumable_and_grouped():
    ratios = [1.0, 1.3, 0.7] * 10
    groups = aspect_ratio_bins(ratios)
    s = GroupedBatchSampler(groups, 4, seed=1)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == len(s) == 7
    assert all(e == 2 for b in full for _, e in b)  # keys carry the epoch for per-sample random streams
    full = [[i for i, _ in b] for b in full]
    assert sum(len(set(groups[i] for i in b)) == 1 for b in full) >= 6
    s.set_epoch(2)
    s.set_start(3)
    assert [[i for i, _ in b] for b in s] == full[3:]
    s.set_epoch(3)
    assert [[i for i, _ in b] for b in s] != full
    r0 = GroupedBatchSampler(groups, 2, seed=1, rank=0, world_size=2)
    r1 = GroupedBatchSampler(groups, 2, seed=1, rank=1, world_size=2)
    a, b = [i for x in r0 for i, _ in x], [i for x in r1 for i, _ in x]
    assert not set(a) & set(b) and len(r0) == len(r1)


def test_coco_evaluator_ground_truth_gives_ap_1(shapes, tmp_path):
    ds = _ds(shapes, "val")
    ev = CocoEvaluator(ds)
    for i in range(len(ds)):
        _, t, meta = ds[i]
        out = {"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"])),
               "masks": t["masks"][:, None].float()}
        ev.process([out], [t], [meta])
    m = ev.compute()
    assert m["bbox_AP"] > 0.99 and m["segm_AP"] > 0.99 and m["bbox_AP50"] > 0.99
    assert "circle" in ev.report()
    paths = ev.write(str(tmp_path))
    res = json.load(open(paths[0]))
    assert {"image_id", "category_id", "bbox", "score"} <= set(res[0])
    # a shuffled wrong-label prediction scores low
    ev2 = CocoEvaluator(ds, iou_types=["bbox"])
    for i in range(len(ds)):
        _, t, meta = ds[i]
        ev2.process([{"boxes": t["boxes"], "labels": t["labels"] % 4 + 1, "scores": torch.ones(len(t["labels"]))}],
                    [t], [meta])
    assert ev2.compute()["bbox_AP"] < 0.1
