"""The video accuracy proof on the built-in moving-shapes data, through the run scripts: mc3_18
reaches clip accuracy >= 0.90 and video accuracy >= 0.95 on val, and the same checkpoint on
temporally shuffled clips (configs/video/shapes/mc3_18_shapes_shuffled.yaml) drops below 0.5: the
model uses motion. The proof config is mc3_18 at width 0.25 on 32x32 crops, 1000 iterations (about 7
minutes on 2 shared CPU cores, docs/video.md), so marked slow:
    .venv/bin/python -m pytest -q -m slow tests/test_proofs_video.py"""
import json
import os

import pytest

from conftest import PY, run

pytestmark = pytest.mark.slow


def test_mc3_18_learns_motion(tmp_path):
    env = {"WORK_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    run(["bash", "scripts/video/shapes/run_mc3_18_shapes.sh", "train", "proof"], env=env, timeout=3600)
    wd = tmp_path / "video/shapes/mc3_18/proof"
    with open(wd / "metrics.jsonl") as f:
        last = [r for r in map(json.loads, f) if r["mode"] == "val"][-1]
    assert last["clip_top1"] >= 0.90 and last["video_top1"] >= 0.95, last
    ckpt = str(wd / "checkpoints" / "best.pth")
    run([PY, "tools/test.py", "configs/video/shapes/mc3_18_shapes_shuffled.yaml", ckpt, "--split", "val",
         "--work-dir", str(tmp_path / "shuffled")], env=env, timeout=1200)
    with open(os.path.join(tmp_path, "shuffled", "metrics_val.json")) as f:
        shuffled = json.load(f)
    assert shuffled["clip_top1"] < 0.5, shuffled
