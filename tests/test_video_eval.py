"""Clip and video accuracy: exact values on hand-made logits, per-class accuracy, the confusion
matrix and the test-mode files."""
import csv
import math
import types

import pytest
import torch

from torchcv.registry import EVALUATORS

CLASSES = ["a", "b", "c"]


def evaluator(topk=(1, 5)):
    return EVALUATORS.build({"type": "VideoClassificationEvaluator", "topk": list(topk)},
                            dataset=types.SimpleNamespace(classes=CLASSES))


def logit(p):
    """Logits whose softmax is ``p``."""
    return [math.log(x) for x in p]


# video 0 (label a): clips say a (0.5), b (0.6), a (0.7): clip accuracy 2/3, averaged -> a
# video 1 (label b): clips say c (0.6), b (0.9): clip 1/2, averaged b = (0.25 + 0.9) / 2 = 0.575 -> b
# video 2 (label c): one clip says a (0.5), c second (0.3): wrong at clip and video level, c in top-2
CLIPS = [  # (index, video, label, softmax)
    (0, 0, 0, [0.5, 0.3, 0.2]), (1, 0, 0, [0.3, 0.6, 0.1]), (2, 0, 0, [0.7, 0.2, 0.1]),
    (3, 1, 1, [0.15, 0.25, 0.6]), (4, 1, 1, [0.05, 0.9, 0.05]),
    (5, 2, 2, [0.5, 0.2, 0.3]),
]


def run(ev, clips, batch=2):
    for k in range(0, len(clips), batch):
        part = clips[k:k + batch]
        logits = torch.tensor([logit(p) for *_, p in part])
        targets = torch.tensor([c[2] for c in part])
        metas = [{"index": i, "video": v, "path": f"v{v}.mp4"} for i, v, *_ in part]
        ev.process(logits, targets, metas)
    return ev.compute()


def test_clip_and_video_accuracy_exact():
    m = run(evaluator(topk=(1, 2, 5)), CLIPS)
    assert m["clip_top1"] == pytest.approx(3 / 6) and m["clip_top2"] == pytest.approx(6 / 6)
    assert m["video_top1"] == pytest.approx(2 / 3) and m["video_top2"] == pytest.approx(3 / 3)
    assert "clip_top5" not in m and "video_top5" not in m  # only 3 classes
    assert m["video_class_acc/a"] == 1.0 and m["video_class_acc/b"] == 1.0 and m["video_class_acc/c"] == 0.0
    assert m["video_mean_class_acc"] == pytest.approx(2 / 3)
    assert m["clip_mean_class_acc"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert not any(k.startswith("top") or k.startswith("class_acc") for k in m)  # every name says its level


def test_duplicate_clips_count_once_and_order_does_not_matter():
    a = run(evaluator(), CLIPS)
    b = run(evaluator(), list(reversed(CLIPS)) + CLIPS[:2], batch=3)
    assert a == b


def test_confusion_report_and_test_files(tmp_path):
    ev = evaluator()
    ev.writing = True
    run(ev, CLIPS)
    assert ev.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]  # video level
    assert ev.clip_confusion.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 0]]
    report = ev.report()
    assert "over 3 videos, 6 clips" in report
    assert "  a                     1.0000  0.6667       1       3" in report.splitlines()
    ev.write(str(tmp_path))
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["video"], r["label"], r["pred"], r["clips"]) for r in rows] == [
        ("0", "a", "a", "3"), ("1", "b", "b", "2"), ("2", "c", "a", "1")]
    assert rows[1]["score"] == "0.57500" and rows[0]["top5_classes"] == "a b c"
    assert float(rows[0]["score"]) == pytest.approx((0.5 + 0.3 + 0.7) / 3, abs=1e-5)
    with open(tmp_path / "clip_predictions.csv") as f:
        clips = list(csv.DictReader(f))
    assert [c["pred"] for c in clips] == ["a", "b", "a", "c", "b", "a"]
    assert (tmp_path / "confusion_matrix.png").is_file()
