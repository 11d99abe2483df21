"""Segmentation evaluation: confusion-matrix metrics against a brute-force count, sliding-window and
multi-scale/flip inference, colour PNG predictions, and the task's collate / checks."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import torchcv  # noqa: F401
from torchcv.config import load_config
from torchcv.evaluation.segmentation import SegEvaluator, confusion_matrix, metrics_from_confusion
from torchcv.registry import TASKS, ConfigError
from torchcv.tasks.segmentation import slide_logits


class _DS:
    num_classes = 3
    classes = ["bg", "a", "b"]
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)


def test_confusion_matrix_and_metrics_match_brute_force():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 3, (2, 10, 10), generator=g)
    tgt = torch.randint(0, 3, (2, 10, 10), generator=g)
    tgt[0, :3] = 255
    cm = confusion_matrix(pred, tgt, 3)
    brute = np.zeros((3, 3), np.int64)
    for p, t in zip(pred.flatten().tolist(), tgt.flatten().tolist()):
        if t != 255:
            brute[t, p] += 1
    assert (cm.numpy() == brute).all()
    m = metrics_from_confusion(cm)
    iou = [brute[c, c] / (brute[c].sum() + brute[:, c].sum() - brute[c, c]) for c in range(3)]
    assert m["mIoU"] == pytest.approx(np.mean(iou))
    assert m["aAcc"] == pytest.approx(np.trace(brute) / brute.sum())
    assert m["mAcc"] == pytest.approx(np.mean([brute[c, c] / brute[c].sum() for c in range(3)]))
    freq = brute.sum(1) / brute.sum()
    assert m["fwIoU"] == pytest.approx(float((freq * np.array(iou)).sum()))


def test_absent_class_is_not_counted_and_perfect_is_one():
    t = torch.tensor([[[0, 0, 1, 1]]])
    m = metrics_from_confusion(confusion_matrix(t, t, 3))  # class 2 neither present nor predicted
    assert m["mIoU"] == 1.0 and m["aAcc"] == 1.0 and m["fwIoU"] == pytest.approx(1.0)


def test_evaluator_process_report_write(tmp_path):
    ev = SegEvaluator(_DS(), keep_predictions=True)
    logits = torch.zeros(2, 3, 4, 6)
    logits[:, 1, :, :3] = 5  # left half class 1, right half class 0
    target = torch.zeros(2, 4, 6, dtype=torch.long)
    target[:, :, :3] = 1
    target[1, 3:, :] = 255  # padding rows of the second (smaller) image
    metas = [{"path": "/x/im0.jpg", "input_size": (4, 6)}, {"path": "/x/im1.jpg", "input_size": (3, 6)}]
    ev.process(logits, target, metas)
    metrics = ev.compute()
    assert metrics["mIoU"] == 1.0 and set(metrics) == {"mIoU", "aAcc", "mAcc", "fwIoU"}
    rep = ev.report()
    assert "bg" in rep and "100.00" in rep and "nan" in rep  # class b absent -> nan row
    ev.write(str(tmp_path))
    im = Image.open(tmp_path / "im1.png")
    assert im.mode == "P" and im.size == (6, 3)
    assert np.array(im.convert("RGB"))[0, 0].tolist() == [255, 0, 0]
    assert os.path.isfile(tmp_path / "per_class_iou.txt")
    # a resized evaluation pipeline: predictions go back to the original image size
    ev2 = SegEvaluator(_DS(), keep_predictions=True)
    ev2.process(logits[:1], target[:1], [{"path": "/x/im2.jpg", "input_size": (4, 6), "orig_size": (2, 3)}])
    ev2.write(str(tmp_path))
    assert np.array(Image.open(tmp_path / "im2.png")).tolist() == [[1, 1, 0], [1, 1, 0]]


def _task(**test):
    return TASKS.get("segmentation")({"task": "segmentation", "test": test})


def test_slide_and_multiscale_flip_inference():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1).eval()  # pointwise: windows must reproduce the whole-image result
    x = torch.randn(1, 3, 37, 50)
    with torch.no_grad():
        whole = conv(x)
        slid = slide_logits(conv, x, 4, crop=(16, 20), stride=(10, 13))
        torch.testing.assert_close(slid, whole)
        t = _task(mode="slide", crop_size=[16, 20], stride=[10, 13], scales=[1.0], flip=True)
        conv.num_classes = 4
        probs = t.predict(conv, x)
        torch.testing.assert_close(probs, 2 * whole.softmax(1))  # flip of a pointwise model = same
        ms = _task(scales=[0.5, 1.0]).predict(conv, x)
        assert ms.shape == (1, 4, 37, 50) and torch.allclose(ms.sum(1), torch.full((1, 37, 50), 2.0))


def test_task_config_errors_collate_and_compat():
    with pytest.raises(ConfigError, match="crop_size"):
        _task(mode="slide")
    with pytest.raises(ConfigError, match=r"unknown config key 'test.flips'.*'flip'"):
        load_config("configs/seg/shapes/lraspp_mobilenet_v3_large_shapes.yaml", ["+test.flips=true"])
    t = _task()
    items = [(torch.ones(3, 4, 5), torch.ones(4, 5, dtype=torch.long), {"index": 0, "path": "a"}),
             (torch.ones(3, 6, 3), torch.zeros(6, 3, dtype=torch.long), {"index": 1, "path": "b"})]
    im, tg, metas = t.collate(items)
    assert im.shape == (2, 3, 6, 5) and tg.shape == (2, 6, 5)
    assert (tg[0, 4:] == 255).all() and (tg[1, :, 3:] == 255).all() and im[1, :, :, 3:].abs().sum() == 0
    assert [m["path"] for m in metas] == ["a", "b"]  # metas pass through (the dataset sets input_size)

    class M(torch.nn.Module):
        num_classes = 5
    with pytest.raises(ConfigError, match="predicts 5 classes but data.val has 3"):
        t.check_compatible(M(), _DS(), "val")
