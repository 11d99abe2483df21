"""End to end through the run scripts on a tiny shapes_det (COCO layout for RetinaNet, converted to
the YOLO layout by the YOLOv3 script): train -> resume -> val -> test; the losses drop, evaluation
writes COCO results. And the one-line errors of the CLI for single-stage configs and YOLO labels."""
import json
import os
import subprocess
import sys

import pytest

from torchcv.cli import train_main

from conftest import ROOT
from test_bad_input import one_line_error

COMMON = ["data.batch_size=2", "data.num_workers=0", "train.log_interval=1", "train.checkpoint_interval=3",
          "train.val_interval=100", "train.plot=false", "lr_schedule.warmup_iters=0",
          "+model.score_thresh=0.0"]  # a few iterations in, every score is still below the usual thresholds
MODELS = {
    "retinanet": ("scripts/det/shapes/run_retinanet_shufflenet_fpn_shapes.sh", "retinanet_shufflenet_fpn",
                  ["model.min_size=128", "model.max_size=160", "data.sampler.aspect_ratio_group_factor=-1",
                   "optimizer.lr=0.002"]),
    "yolov3": ("scripts/det/shapes/run_yolov3_darknet_shapes.sh", "yolov3_darknet",
               ["model.size=128", "model.train_sizes=[128]", "optimizer.lr=0.004"]),
}


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "shapes_det"
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out", str(out),
                    "--train", "4", "--val", "3", "--seed", "5"], check=True, capture_output=True)
    return out


def _run(script, mode, tag, env, *extra):
    r = subprocess.run(["bash", script, mode, tag, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.mark.parametrize("name", list(MODELS))
def test_train_resume_val_test(tmp_path, tiny_shapes, name):
    script, subdir, extra = MODELS[name]
    env = dict(os.environ, TORCHCV_SHAPES_DET=str(tiny_shapes), TORCHCV_SHAPES_DET_YOLO=str(tmp_path / "yolo"),
               PYTHONPATH=ROOT, WORK_ROOT=str(tmp_path / "work_dirs"), OMP_NUM_THREADS="1")
    args = COMMON + extra
    _run(script, "train", "ci", env, "train.max_iters=6", *args)
    _run(script, "resume", "ci", env, "train.max_iters=9", *args)
    work = tmp_path / "work_dirs" / "det" / "shapes" / subdir / "ci"
    recs = [json.loads(line) for line in open(work / "metrics.jsonl")]
    losses = [r["loss"] for r in recs if "loss" in r]
    assert max(r.get("iter", 0) for r in recs if "loss" in r) == 9 and len(losses) >= 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    _run(script, "val", "ci", env, *args)
    _run(script, "test", "ci", env, *args)
    metrics = json.load(open(work / "test" / "metrics_test.json"))
    assert {"bbox_AP", "bbox_AP50"} <= set(metrics) and "segm_AP" not in metrics
    res = json.load(open(work / "test" / "results_bbox.json"))
    assert res and {"image_id", "category_id", "bbox", "score"} <= set(res[0])
    assert {r["category_id"] for r in res} <= {1, 2, 3, 4}
    if name == "yolov3":  # the script converted the COCO data to images/ + labels/*.txt
        assert (tmp_path / "yolo" / "labels" / "val").is_dir() and (tmp_path / "yolo" / "classes.names").is_file()


def test_anchor_head_mismatch_is_one_line(tmp_path, tiny_shapes, capsys):
    rc = train_main(["configs/det/shapes/retinanet_shufflenet_fpn_shapes.yaml", "--work-dir", str(tmp_path / "wd"),
                     f"data.root={tiny_shapes}",
                     "model.head={type: RetinaNetHead, in_channels: 64, num_anchors: 3, num_classes: 5}"])
    one_line_error(capsys, rc, 2, "RetinaNet.head predicts 3 anchors per location but the anchors give 9")


def test_bad_yolo_label_is_one_line(tmp_path, tiny_shapes, capsys):
    from datasets.coco2yolo import convert
    yolo = tmp_path / "yolo"
    for split in ("train", "val"):
        convert(str(tiny_shapes / split), str(tiny_shapes / "annotations" / f"instances_{split}.json"), str(yolo), split)
    label = sorted((yolo / "labels" / "train").iterdir())[0]
    label.write_text(label.read_text() + "3 0.5 0.5 0.2\n")
    args = ["configs/det/shapes/yolov3_darknet_shapes.yaml", "--work-dir", str(tmp_path / "wd"), f"data.root={yolo}",
            "data.num_workers=0", "train.max_iters=1"]
    rc = train_main(args)
    line = one_line_error(capsys, rc, 1, str(label), "expected 5 fields")
    assert f"line {len(label.read_text().splitlines())}" in line
    label.write_text("7 0.5 0.5 0.2 0.2\n")
    rc = train_main(args)
    one_line_error(capsys, rc, 1, str(label), "line 1: class id 7 is not an integer in 0..3")
    label.unlink()
    rc = train_main(args)
    one_line_error(capsys, rc, 1, "no label file for", str(label))
