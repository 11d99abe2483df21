"""int8 accuracy proofs on the built-in classification data (minutes on 2 CPU cores: marked slow,
run with .venv/bin/python -m pytest -q -m slow tests/test_proofs_deploy.py -s).

ResNet-18 trained by the run script (fp32), then post-training static quantization (tools/quantize.py)
and quantization-aware fine-tuning (QATImageClassifier + QATHook through tools/train.py), each int8
model evaluated by tools/test.py on the val split: PTQ within 2 points of fp32 top-1, QAT within 1."""
import json
import os

import pytest

from conftest import PY, run

pytestmark = pytest.mark.slow
CFG = "configs/cls/shapes/resnet18_shapes.yaml"
QAT_CFG = "configs/cls/shapes/resnet18_shapes_qat.yaml"


def val_top1(config, checkpoint, out_dir, *overrides):
    run([PY, "tools/test.py", config, str(checkpoint), "--split", "val", "--work-dir", str(out_dir), *overrides],
        timeout=1800)
    with open(os.path.join(out_dir, "metrics_val.json")) as f:
        return json.load(f)["top1"]


def test_ptq_within_2_points_and_qat_within_1_point_of_fp32(tmp_path):
    env = {"WORK_ROOT": str(tmp_path)}
    run(["bash", "scripts/cls/shapes/run_resnet18_shapes.sh", "train", "proof"], env=env, timeout=3600)
    best = tmp_path / "cls/shapes/resnet18/proof/checkpoints/best.pth"
    data = [f"data.root={os.environ.get('TORCHCV_SHAPES_CLS', 'data/shapes_cls')}"]
    fp32 = val_top1(CFG, best, tmp_path / "eval_fp32", *data)

    run([PY, "tools/quantize.py", CFG, str(best), "--calib-batches", "32", "--out", str(tmp_path / "ptq.pth"), *data],
        timeout=1800)
    ptq = val_top1(CFG, tmp_path / "ptq.pth", tmp_path / "eval_ptq", *data, "model.type=QuantizedImageClassifier",
                   "device=cpu")

    run([PY, "tools/train.py", QAT_CFG, "--work-dir", str(tmp_path / "qat"), f"model.fp32_weights={best}", *data],
        timeout=3600)
    qat = val_top1(QAT_CFG, tmp_path / "qat/checkpoints/int8_x86.pth", tmp_path / "eval_qat", *data,
                   "model.type=QuantizedImageClassifier")
    print(f"\nval top-1: fp32 {fp32:.4f}, int8 PTQ {ptq:.4f} ({ptq - fp32:+.4f}), int8 QAT {qat:.4f} ({qat - fp32:+.4f})")
    assert fp32 >= 0.9
    assert fp32 - ptq <= 0.02
    assert fp32 - qat <= 0.01
