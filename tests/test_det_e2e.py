"""End to end through the run script on a tiny shapes_det: train a few iterations -> resume ->
val -> test; the losses drop and evaluation runs on the real outputs."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "scripts/det/shapes/run_maskrcnn_shufflenet_fpn_shapes.sh"
SMALL = ["data.batch_size=2", "data.num_workers=0", "model.min_size=160", "model.max_size=192",
         "train.log_interval=1", "train.checkpoint_interval=4", "train.val_interval=100", "train.plot=false",
         "lr_schedule.warmup_iters=0", "optimizer.lr=0.002", "data.sampler.aspect_ratio_group_factor=-1"]


def _run(mode, tag, env, *extra):
    r = subprocess.run(["bash", SCRIPT, mode, tag, *SMALL, *extra], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_shapes_maskrcnn_train_resume_val_test(tmp_path):
    data = tmp_path / "shapes_det"
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out", str(data),
                    "--train", "4", "--val", "3", "--seed", "5"], check=True, capture_output=True)
    env = dict(os.environ, TORCHCV_SHAPES_DET=str(data), PYTHONPATH=ROOT, WORK_ROOT=str(tmp_path / "work_dirs"))
    tag = "ci"
    work = os.path.join(tmp_path, "work_dirs/det/shapes/maskrcnn_shufflenet_fpn", tag)
    _run("train", tag, env, "train.max_iters=8")
    _run("resume", tag, env, "train.max_iters=12")
    recs = [json.loads(l) for l in open(os.path.join(work, "metrics.jsonl"))]
    losses = [r["loss"] for r in recs if "loss" in r]
    iters = [r.get("iter") for r in recs if "loss" in r]
    assert max(iters) == 12 and len(losses) >= 10
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    _run("val", tag, env)
    _run("test", tag, env)
    metrics = json.load(open(os.path.join(work, "test", "metrics_test.json")))
    assert {"bbox_AP", "segm_AP", "bbox_AP50"} <= set(metrics)
    res = json.load(open(os.path.join(work, "test", "results_bbox.json")))
    assert res and {"image_id", "category_id", "bbox", "score"} <= set(res[0])
    assert {r["category_id"] for r in res} <= {1, 2, 3, 4}
