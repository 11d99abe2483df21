"""Classification end to end through the run script: train -> resume -> val -> test."""
import csv
import json

import pytest

from conftest import run

SCRIPT = "scripts/cls/shapes/run_resnet18_shapes.sh"
FAST = ["data.batch_size=32", "data.num_workers=0", "train.log_interval=5"]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "shapes_cls"
    env = {"WORK_ROOT": str(root / "work_dirs"), "TORCHCV_SHAPES_CLS": str(data)}
    from datasets.generate_shapes_cls import generate
    generate(str(data), seed=1, counts=(("train", 1200), ("val", 120), ("test", 120)), size=32)
    logs = {}
    logs["train"] = run(["bash", SCRIPT, "train", "e2e", "train.max_epochs=2", *FAST], env=env).stdout
    logs["resume"] = run(["bash", SCRIPT, "resume", "e2e", "train.max_epochs=6", *FAST], env=env).stdout
    logs["val"] = run(["bash", SCRIPT, "val", "e2e", *FAST], env=env).stdout
    logs["test"] = run(["bash", SCRIPT, "test", "e2e", *FAST], env=env).stdout
    return root / "work_dirs" / "cls" / "shapes" / "resnet18" / "e2e", logs


def test_work_dir_holds_everything(e2e):
    wd, _ = e2e
    for rel in ("config.yaml", "log.txt", "metrics.jsonl", "checkpoints/last_checkpoint", "checkpoints/best.pth",
                "checkpoints/epoch_6.pth", "plots/loss.png", "plots/lr.png", "plots/val_metrics.png",
                "plots/confusion_matrix.png", "metrics_val.json", "test/metrics_test.json", "test/predictions.csv",
                "test/confusion_matrix.png"):
        assert (wd / rel).is_file(), rel
    assert (wd / "checkpoints" / "last_checkpoint").read_text().strip() == "epoch_6.pth"


def test_metric_far_above_chance_and_losses_drop(e2e):
    wd, logs = e2e
    val = json.loads((wd / "metrics_val.json").read_text())
    test = json.loads((wd / "test" / "metrics_test.json").read_text())
    assert val["top1"] > 0.5 and test["top1"] > 0.5, (val["top1"], test["top1"])  # chance is 1/6
    recs = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs if r["mode"] == "train"]
    assert losses[-1] < 0.6 * losses[0]
    assert [r["epoch"] for r in recs if r["mode"] == "val"] == [1, 2, 3, 4, 5, 6]  # resume continued, no duplicates
    assert "resumed from" in logs["resume"] and "| top1" in logs["test"]


def test_predictions_file_has_every_test_image(e2e):
    wd, _ = e2e
    with open(wd / "test" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120 and {"path", "label", "pred", "score"} <= set(rows[0])
    acc = sum(r["label"] == r["pred"] for r in rows) / len(rows)
    test = json.loads((wd / "test" / "metrics_test.json").read_text())
    assert abs(acc - test["top1"]) < 1e-9


def test_tensorboard_events_are_readable(e2e):
    wd, _ = e2e
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(wd / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "val/top1" in tags and "train/lr" in tags
    steps = [e.step for e in acc.Scalars("val/top1")]
    assert steps == sorted(set(steps)) and len(steps) == 6
