"""Bad input a user can cause through a config, data, a checkpoint or the command line: one clear
line naming the file / key / value and the fix, never a traceback (``--debug`` shows it)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from torchcv import cli
from torchcv.cli import train_main

from conftest import CLS_FAST, PY, ROOT, run

CLS = "configs/cls/shapes/resnet18_shapes.yaml"
DET = "configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml"
DET_SMALL = ["data.batch_size=2", "data.num_workers=0", "model.min_size=128", "model.max_size=160",
             "train.log_interval=1", "train.plot=false", "train.val_interval=100", "lr_schedule.warmup_iters=0",
             "data.sampler.aspect_ratio_group_factor=-1"]


def one_line_error(capsys, code, rc, *needles):
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == rc, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out", str(out / "d"),
                    "--train", "4", "--val", "2", "--seed", "11"], check=True, capture_output=True)
    return out / "d"


def copy_det(det_data, tmp_path):
    dst = tmp_path / "d"
    shutil.copytree(det_data, dst)
    return dst


@pytest.mark.parametrize("override,needles", [
    (["optimizer.lr=-0.1"], ["optimizer.lr=-0.1: must be >= 0"]),
    (["data.batch_size=0"], ["data.batch_size", "must be >= 1, got 0"]),
    (["train.val_interval=0"], ["train.val_interval", ">= 1"]),
    (["optimizer.type=Adamm"], ["optimizer.type: 'Adamm'", "Adam"]),
    (["lr_schedule.policy=cosin"], ["lr_schedule.policy: 'cosin'", "cosine"]),
    (["train.ema=1.5"], ["train.ema decay=1.5", "(0, 1)"]),
    (["task=detecton"], ["'detecton' is not in the tasks registry", "detection"]),
    (["+optimizer.betas=[1.5, 0.9]", "optimizer.type=Adam"], ["optimizer: Invalid beta parameter"]),
    (["custom_imports=[no_such_module]"], ["custom_imports: no module named 'no_such_module'"]),
    (["+train.max_epoch=3"], ["unknown config key 'train.max_epoch'", "max_epochs"]),
])
def test_config_values(tmp_path, shapes_cls, capsys, override, needles):
    rc = train_main([CLS, "--work-dir", str(tmp_path / "wd"), *CLS_FAST, f"data.root={shapes_cls}", *override])
    one_line_error(capsys, rc, 2, *needles)


def test_checkpoint_paths(tmp_path, shapes_cls, capsys):
    base = [CLS, "--work-dir", str(tmp_path / "wd"), *CLS_FAST, f"data.root={shapes_cls}"]
    rc = train_main(base + ["--resume", str(tmp_path / "nope.pth")])
    one_line_error(capsys, rc, 1, "checkpoint not found", "nope.pth")
    rc = train_main(base + ["--load-from", str(tmp_path / "missing.pth")])
    one_line_error(capsys, rc, 1, "checkpoint not found", "missing.pth")
    rc = cli.test_main([CLS, str(tmp_path / "none.pth"), *CLS_FAST, f"data.root={shapes_cls}"])
    one_line_error(capsys, rc, 1, "none.pth", "Train first")


def test_resume_with_other_optimizers_names_both(tmp_path, shapes_cls, capsys):
    base = [CLS, "--work-dir", str(tmp_path / "wd"), *CLS_FAST, f"data.root={shapes_cls}"]
    assert train_main(base + ["train.max_epochs=1", "train.plot=false"]) == 0
    capsys.readouterr()
    rc = train_main(base + ["--resume", "optimizer={a: {type: SGD, lr: 0.1, params: net.fc}, b: {type: SGD, lr: 0.1}}",
                            "lr_schedule={policy: constant}", "train.max_epochs=2"])
    one_line_error(capsys, rc, 1, "holds optimizers ['default']", "names ['a', 'b']")


def test_debug_shows_the_traceback(tmp_path, shapes_cls):
    with pytest.raises(Exception, match="must be >= 0"):
        train_main([CLS, "--debug", "--work-dir", str(tmp_path / "wd"), *CLS_FAST, f"data.root={shapes_cls}",
                    "optimizer.lr=-1"])


def test_corrupt_coco_json(tmp_path, det_data, capsys):
    d = copy_det(det_data, tmp_path)
    ann = d / "annotations" / "instances_train.json"
    ann.write_text(ann.read_text()[:-200])
    rc = train_main([DET, "--work-dir", str(tmp_path / "wd"), f"data.root={d}", *DET_SMALL, "train.max_iters=2"])
    one_line_error(capsys, rc, 1, "instances_train.json is not valid JSON (line", "regenerate")
    data = json.loads((det_data / "annotations" / "instances_train.json").read_text())
    data["annotations"][0]["bbox"] = [1, 2, 3]
    ann.write_text(json.dumps(data))
    rc = train_main([DET, "--work-dir", str(tmp_path / "wd"), f"data.root={d}", *DET_SMALL, "train.max_iters=2"])
    one_line_error(capsys, rc, 1, "has bbox [1, 2, 3]", "[x, y, width, height]")


def test_corrupt_detection_image_is_skipped_or_named(tmp_path, det_data):
    d = copy_det(det_data, tmp_path)
    bad = sorted((d / "train").iterdir())[0]
    bad.write_bytes(b"\x89PNG but not really")
    args = [PY, "tools/train.py", DET, "--work-dir", str(tmp_path / "wd"), f"data.root={d}", *DET_SMALL,
            "train.max_iters=3"]
    p = run(args, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "skipping corrupt image (1 skipped so far" in p.stdout and bad.name in p.stdout
    # with loader workers, the error raised in the worker still arrives as one line
    p = run([*args[:4], str(tmp_path / "wd2"), *args[5:], "data.skip_corrupt=false", "data.num_workers=1"], check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert bad.name in lines[0] and "cannot decode image" in lines[0] and "data.skip_corrupt=true" in lines[0]


def test_run_script_val_before_train_does_not_launch_python(tmp_path):
    p = run(["bash", "scripts/cls/shapes/run_resnet18_shapes.sh", "val", "never_trained"], check=False,
            env={"WORK_ROOT": str(tmp_path), "TORCHCV_SHAPES_CLS": str(tmp_path / "nodata"),
                 "PYTHON": "/bin/false-python-must-not-run"})
    assert p.returncode == 1 and "no checkpoint" in p.stderr and "run 'train' first" in p.stderr
    assert "false-python" not in p.stderr
    p = run(["bash", "scripts/cls/shapes/run_resnet18_shapes.sh", "train", "x"], check=False,
            env={"WORK_ROOT": str(tmp_path), "NNODES": "two", "TORCHCV_SHAPES_CLS": str(tmp_path / "nodata"),
                 "PYTHON": "true"})
    assert p.returncode == 2 and "NNODES='two'" in p.stderr
    p = run(["bash", "scripts/cls/shapes/run_resnet18_shapes.sh", "train", "x"], check=False,
            env={"WORK_ROOT": str(tmp_path), "NNODES": "2", "NODE_RANK": "0", "PYTHON": "true",
                 "TORCHCV_SHAPES_CLS": str(tmp_path / "nodata")})
    assert p.returncode == 2 and "MASTER_ADDR" in p.stderr


def test_weights_file_of_another_model_for_resume(tmp_path, shapes_cls, capsys):
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2)}, path)
    rc = train_main([CLS, "--work-dir", str(tmp_path / "wd"), *CLS_FAST, f"data.root={shapes_cls}",
                     "--resume", str(path)])
    one_line_error(capsys, rc, 1, "weights-only file", "--load-from")
