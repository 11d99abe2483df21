"""Video classification end to end through the run script (train -> resume -> val -> test), then
tools/demo.py on video files and tools/browse_dataset.py on clips."""
import csv
import json
import os

import cv2
import pytest

from conftest import PY, run
from video_helpers import VIDEO_FAST, tiny_shapes

SCRIPT = "scripts/video/shapes/run_mc3_18_shapes.sh"
CFG = "configs/video/shapes/mc3_18_shapes.yaml"
FAST = VIDEO_FAST + ["train.val_interval=2", "train.checkpoint_interval=2"]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_e2e")
    data = tiny_shapes(root / "shapes_video", seed=3, train=16, val=8, test=8)
    env = {"WORK_ROOT": str(root / "work_dirs"), "TORCHCV_SHAPES_VIDEO": data, "OMP_NUM_THREADS": "1"}
    logs = {"train": run(["bash", SCRIPT, "train", "e2e", "train.max_iters=2", *FAST], env=env).stdout,
            "resume": run(["bash", SCRIPT, "resume", "e2e", "train.max_iters=4", *FAST], env=env).stdout,
            "val": run(["bash", SCRIPT, "val", "e2e", *FAST], env=env).stdout,
            "test": run(["bash", SCRIPT, "test", "e2e", *FAST], env=env).stdout}
    return root / "work_dirs" / "video" / "shapes" / "mc3_18" / "e2e", data, logs, env


def test_work_dir_and_metrics(e2e):
    wd, _, logs, _ = e2e
    for rel in ("config.yaml", "log.txt", "metrics.jsonl", "checkpoints/iter_4.pth", "checkpoints/best.pth",
                "plots/confusion_matrix.png", "plots/val_metrics.png", "metrics_val.json", "test/metrics_test.json",
                "test/predictions.csv", "test/clip_predictions.csv", "test/confusion_matrix.png"):
        assert (wd / rel).is_file(), rel
    recs = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in recs if r["mode"] == "val"] == [2, 4]  # resumed, continued, no duplicates
    assert [r["iter"] for r in recs if r["mode"] == "train"] == [1, 2, 3, 4]
    val = json.loads((wd / "metrics_val.json").read_text())
    assert {"clip_top1", "clip_top5", "video_top1", "video_top5", "video_mean_class_acc",
            "video_class_acc/grow"} <= set(val)
    assert "resumed from" in logs["resume"] and "| video_top1" in logs["test"] and "| clip_top1" in logs["val"]
    assert "per-class accuracy over 8 videos, 16 clips" in logs["test"]


def test_predictions_per_video_match_the_metric(e2e):
    wd, data, _, _ = e2e
    with open(wd / "test" / "predictions.csv") as f:
        videos = list(csv.DictReader(f))
    with open(wd / "test" / "clip_predictions.csv") as f:
        clips = list(csv.DictReader(f))
    assert len(videos) == 8 and len(clips) == 16 and {r["clips"] for r in videos} == {"2"}
    assert sorted(r["path"] for r in videos) == sorted(
        os.path.join(data, "test", c, f) for c in os.listdir(os.path.join(data, "test"))
        if not c.startswith(".") for f in os.listdir(os.path.join(data, "test", c)))
    metrics = json.loads((wd / "test" / "metrics_test.json").read_text())
    assert metrics["video_top1"] == sum(r["label"] == r["pred"] for r in videos) / 8
    assert metrics["clip_top1"] == sum(r["label"] == r["pred"] for r in clips) / 16


def test_demo_on_video_files_and_browse_clips(e2e, tmp_path):
    wd, data, _, env = e2e
    folder = os.path.join(data, "test", "rotate_cw")
    p = run([PY, "tools/demo.py", CFG, str(wd / "checkpoints" / "best.pth"), folder, "--out-dir", str(tmp_path / "demo"),
             f"data.root={data}", *VIDEO_FAST], env=env)
    names = sorted(os.listdir(folder))
    assert sorted(os.listdir(tmp_path / "demo")) == [os.path.splitext(n)[0] + ".png" for n in names]
    picture = cv2.imread(str(tmp_path / "demo" / os.listdir(tmp_path / "demo")[0]))
    assert picture.shape[1] > 3 * picture.shape[0]  # a strip of frames
    assert p.stdout.count(" -> ") == len(names)
    p = run([PY, "tools/browse_dataset.py", CFG, "--split", "train", "--num", "3", "--out-dir", str(tmp_path / "b"),
             f"data.root={data}", *VIDEO_FAST], env=env)
    assert sorted(os.listdir(tmp_path / "b")) == ["train_0000.png", "train_0001.png", "train_0002.png"]
    strip = cv2.imread(str(tmp_path / "b" / "train_0000.png"))
    assert strip.shape[1] > 3 * strip.shape[0]  # 4 frames side by side
