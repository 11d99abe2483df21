"""Accuracy proofs of the built-in pose configs through their run scripts: CPM PCK@0.2 >= 0.80 on the
stick-figure crops, OpenPose (light trunk) keypoint AP >= 0.30 on the multi-person images. Minutes
each on 2 CPU cores, so marked slow: .venv/bin/python -m pytest -q -m slow tests/test_proofs_pose.py"""
import json
import os

import pytest

from conftest import run

pytestmark = pytest.mark.slow


def last_val(work_dir, key):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        return [r[key] for r in map(json.loads, f) if r["mode"] == "val"][-1]


def test_cpm_reaches_080_pck(tmp_path):
    run(["bash", "scripts/pose/shapes/run_cpm_shapes.sh", "train", "proof"], env={"WORK_ROOT": str(tmp_path)},
        timeout=5400)
    assert last_val(tmp_path / "pose/shapes/cpm_light/proof", "PCK") >= 0.80


def test_openpose_reaches_030_keypoint_ap(tmp_path):
    run(["bash", "scripts/pose/shapes/run_openpose_shapes.sh", "train", "proof"], env={"WORK_ROOT": str(tmp_path)},
        timeout=5400)
    assert last_val(tmp_path / "pose/shapes/openpose_light/proof", "keypoints_AP") >= 0.30
