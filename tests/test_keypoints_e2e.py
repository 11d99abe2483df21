"""Keypoint R-CNN end to end through the run script on tiny stick-figure data: train -> resume ->
val -> test; keypoint AP is reported and the test outputs hold keypoints."""
import json
import os

from conftest import run

SCRIPT = "scripts/pose/shapes/run_keypointrcnn_shufflenet_fpn_shapes.sh"
SMALL = ["data.batch_size=2", "data.val_batch_size=2", "data.num_workers=0", "model.min_size=128",
         "model.max_size=128", "train.log_interval=1", "train.checkpoint_interval=3", "train.val_interval=100",
         "train.plot=false", "lr_schedule.warmup_iters=0"]


def test_keypointrcnn_train_resume_val_test(tmp_path):
    from datasets.generate_stick_figures import generate
    generate(str(tmp_path / "data"), seed=9, n_train=4, n_val=3, size=128)
    env = {"TORCHCV_POSE_SHAPES": str(tmp_path / "data"), "WORK_ROOT": str(tmp_path / "work")}
    work = tmp_path / "work" / "pose" / "shapes" / "keypointrcnn_shufflenet_fpn" / "e2e"
    run(["bash", SCRIPT, "train", "e2e", "train.max_iters=3", *SMALL], env=env)
    p = run(["bash", SCRIPT, "resume", "e2e", "train.max_iters=6", *SMALL], env=env)
    assert "resumed from" in p.stdout and "iter_3.pth" in p.stdout
    recs = [json.loads(line) for line in open(work / "metrics.jsonl")]
    train = [r for r in recs if r["mode"] == "train"]
    assert [r["iter"] for r in train] == [1, 2, 3, 4, 5, 6] and all("loss_keypoint" in r for r in train)
    vals = [r for r in recs if r["mode"] == "val"]
    assert [v["iter"] for v in vals] == [3, 6] and "keypoints_AP" in vals[-1] and "keypoints_APm" in vals[-1]
    run(["bash", SCRIPT, "val", "e2e", *SMALL], env=env)
    assert json.load(open(work / "metrics_val.json"))["split"] == "val"
    run(["bash", SCRIPT, "test", "e2e", *SMALL], env=env)
    metrics = json.load(open(work / "test" / "metrics_test.json"))
    assert {"bbox_AP", "keypoints_AP", "keypoints_AP50"} <= set(metrics)
    res = json.load(open(work / "test" / "results_keypoints.json"))
    assert res and all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in res)
