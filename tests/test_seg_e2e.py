"""End to end through the run script on a tiny copy of the built-in data:
train -> resume -> val -> test; checks losses, metrics and the written colour PNG predictions."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import run

SCRIPT = "scripts/seg/shapes/run_lraspp_mobilenet_shapes.sh"
CI = ["data.batch_size=4", "data.val_batch_size=4", "data.num_workers=0", "data.train.transforms.1.size=48",
      "train.val_interval=3", "train.checkpoint_interval=3", "train.log_interval=1", "train.plot=false",
      "lr_schedule.warmup_iters=0"]


@pytest.fixture()
def tiny(tmp_path):
    from datasets.generate_shapes_seg import generate
    generate(str(tmp_path / "data"), size=64, n_train=12, n_val=4, n_test=3, seed=1)
    tag = "pytest"
    work = os.path.join(tmp_path, "work_dirs", "seg", "shapes", "lraspp_mobilenet", tag)
    yield {"TORCHCV_SHAPES_SEG": str(tmp_path / "data"), "WORK_ROOT": str(tmp_path / "work_dirs")}, tag, work


def _records(work):
    with open(os.path.join(work, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_resume_val_test_through_run_script(tiny):
    env, tag, work = tiny
    run(["bash", SCRIPT, "train", tag, "train.max_iters=3", *CI], env=env)
    assert os.path.isfile(os.path.join(work, "checkpoints", "iter_3.pth"))
    run(["bash", SCRIPT, "resume", tag, "train.max_iters=6", *CI], env=env)
    recs = _records(work)
    train = [r for r in recs if r["mode"] == "train"]
    assert [r["iter"] for r in train][-3:] == [4, 5, 6]  # resumed, not restarted
    assert train[-1]["loss"] < train[0]["loss"]
    vals = [r for r in recs if r["mode"] == "val"]
    assert [v["iter"] for v in vals] == [3, 6]  # val_interval 3, and the run that stopped at 3 validated once

    p = run(["bash", SCRIPT, "val", tag, *CI], env=env)
    with open(os.path.join(work, "metrics_val.json")) as f:
        m = json.load(f)
    # val mode evaluates best.pth: the same numbers as the best validation during training
    best = max(vals, key=lambda v: v["mIoU"])
    assert m["split"] == "val" and m["checkpoint"].endswith("best.pth")
    for k in ("mIoU", "aAcc", "mAcc", "fwIoU"):
        assert m[k] == pytest.approx(best[k], abs=1e-12), k
    assert "background" in p.stdout + p.stderr  # the per-class IoU table was printed

    run(["bash", SCRIPT, "test", tag, *CI], env=env)
    out = os.path.join(work, "test")
    pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert pngs == ["test_00000.png", "test_00001.png", "test_00002.png"]
    im = Image.open(os.path.join(out, pngs[0]))
    assert im.mode == "P" and im.size == (64, 64) and np.array(im).max() < 4
    # the written predictions are the ones scored: the pixel accuracy recomputed from the PNGs
    # against the ground-truth masks equals the reported aAcc
    with open(os.path.join(out, "metrics_test.json")) as f:
        reported = json.load(f)
    root = env["TORCHCV_SHAPES_SEG"]
    right = total = 0
    for name in pngs:
        pred = np.array(Image.open(os.path.join(out, name)))
        gt = np.array(Image.open(os.path.join(root, "SegmentationClass", name)))
        valid = gt != 255
        right += int((pred[valid] == gt[valid]).sum())
        total += int(valid.sum())
    assert right / total == pytest.approx(reported["aAcc"], abs=1e-9)
