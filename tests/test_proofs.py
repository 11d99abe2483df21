"""The accuracy proofs of the built-in configs, through the run scripts. Minutes each on 2 CPU cores,
so marked slow and excluded from the default run: .venv/bin/python -m pytest -q -m slow tests"""
import json
import os

import pytest

from conftest import run

pytestmark = pytest.mark.slow


def best_val(work_dir, key):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        return max(r[key] for r in map(json.loads, f) if r["mode"] == "val")


def last_val(work_dir, key):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        return [r[key] for r in map(json.loads, f) if r["mode"] == "val"][-1]


def test_classification_resnet18_reaches_95_percent(tmp_path):
    run(["bash", "scripts/cls/shapes/run_resnet18_shapes.sh", "train", "proof"], env={"WORK_ROOT": str(tmp_path)},
        timeout=3600)
    assert last_val(tmp_path / "cls/shapes/resnet18/proof", "top1") >= 0.95


def test_segmentation_lraspp_reaches_080_miou(tmp_path):
    run(["bash", "scripts/seg/shapes/run_lraspp_mobilenet_shapes.sh", "train", "proof"],
        env={"WORK_ROOT": str(tmp_path)}, timeout=3600)
    assert last_val(tmp_path / "seg/shapes/lraspp_mobilenet/proof", "mIoU") >= 0.80


def test_maskrcnn_reaches_050_box_and_mask_ap(tmp_path):
    run(["bash", "scripts/det/shapes/run_maskrcnn_shufflenet_fpn_shapes.sh", "train", "proof"],
        env={"WORK_ROOT": str(tmp_path)}, timeout=5400)
    wd = tmp_path / "det/shapes/maskrcnn_shufflenet_fpn/proof"
    assert last_val(wd, "bbox_AP") >= 0.5 and last_val(wd, "segm_AP") >= 0.5


def test_keypointrcnn_reaches_040_keypoint_ap(tmp_path):
    run(["bash", "scripts/pose/shapes/run_keypointrcnn_shufflenet_fpn_shapes.sh", "train", "proof"],
        env={"WORK_ROOT": str(tmp_path)}, timeout=5400)
    wd = tmp_path / "pose/shapes/keypointrcnn_shufflenet_fpn/proof"
    assert last_val(wd, "keypoints_AP") >= 0.40 and last_val(wd, "keypoints_AP50") >= 0.70
