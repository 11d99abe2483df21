"""Accuracy proofs of the single-stage detectors on the built-in shapes_det data, through the run
scripts, from scratch (2400-4000 iterations each, 7-10 min on a quiet 2-core CPU), so marked slow and
excluded from the default run:
.venv/bin/python -m pytest -q -m slow tests/test_proofs_det_single.py
The figures and times are in docs/detection.md."""
import json
import os

import pytest

from conftest import run

pytestmark = pytest.mark.slow

CASES = [  # run script model, metric, target
    ("retinanet_shufflenet_fpn", "bbox_AP", 0.50),
    ("fcos_shufflenet_fpn", "bbox_AP", 0.50),
    ("ssd_shufflenet", "bbox_AP", 0.40),
    ("ssdlite_mobilenet_v3", "bbox_AP", 0.40),
    ("yolov3_darknet", "bbox_AP50", 0.70),
]


def last_val(work_dir, key):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        return [r[key] for r in map(json.loads, f) if r["mode"] == "val"][-1]


@pytest.mark.parametrize("model,metric,target", CASES, ids=[c[0] for c in CASES])
def test_single_stage_detector_reaches_target(tmp_path, model, metric, target):
    run(["bash", f"scripts/det/shapes/run_{model}_shapes.sh", "train", "proof"], env={"WORK_ROOT": str(tmp_path)},
        timeout=5400)
    assert last_val(tmp_path / "det" / "shapes" / model / "proof", metric) >= target
