"""Bad input gives a short error naming the file/key/value and the fix (or a counted skip)."""
import os
import shutil

import pytest
import torch

from conftest import CLS_FAST, PY, run

CONFIG = "configs/cls/shapes/resnet18_shapes.yaml"


def train(tmp_path, data, *extra):
    return run([PY, "tools/train.py", CONFIG, "--work-dir", str(tmp_path / "wd"), *CLS_FAST,
                f"data.root={data}", "train.max_epochs=1", *extra], check=False)


@pytest.fixture
def data_copy(tmp_path, shapes_cls):
    dst = tmp_path / "data"
    shutil.copytree(shapes_cls, dst)
    return dst


def test_missing_dataset_path(tmp_path):
    p = train(tmp_path, tmp_path / "nowhere")
    assert p.returncode == 2
    assert "nowhere/train" in p.stderr and "does not exist" in p.stderr and "data.root" in p.stderr
    assert "Traceback" not in p.stderr


def test_empty_class_folder(tmp_path, data_copy):
    os.makedirs(data_copy / "train" / "hexagon")
    p = train(tmp_path, data_copy)
    assert p.returncode == 2 and "hexagon" in p.stderr and "has no images" in p.stderr


def test_corrupt_image_is_skipped_and_counted(tmp_path, data_copy):
    bad = sorted((data_copy / "train" / "circle").iterdir())[0]
    bad.write_bytes(b"not a png at all")
    p = train(tmp_path, data_copy)
    assert p.returncode == 0, p.stderr
    assert "skipping corrupt image (1 skipped so far" in p.stdout and bad.name in p.stdout
    p = train(tmp_path, data_copy, "data.skip_corrupt=false", "--work-dir", str(tmp_path / "wd2"))
    assert p.returncode == 1 and bad.name in p.stderr and "skip_corrupt" in p.stderr


def test_num_classes_mismatch(tmp_path, shapes_cls):
    p = train(tmp_path, shapes_cls, "model.num_classes=10")
    assert p.returncode == 2 and "model.num_classes is 10" in p.stderr and "model.num_classes=6" in p.stderr


def test_checkpoint_from_another_model(tmp_path, shapes_cls):
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2))
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    p = run([PY, "tools/test.py", CONFIG, str(path), *CLS_FAST, f"data.root={shapes_cls}"], check=False)
    assert p.returncode == 1 and "does not fit this model" in p.stderr and "other.pth" in p.stderr
    p = train(tmp_path, shapes_cls, "--load-from", str(path))
    assert p.returncode == 1 and "does not fit this model" in p.stderr


def test_unknown_model_name(tmp_path, shapes_cls):
    p = train(tmp_path, shapes_cls, "model.arch=resnet19")
    assert p.returncode == 2 and "resnet19" in p.stderr and "resnet18" in p.stderr
    p = train(tmp_path, shapes_cls, "model.type=ImageClassifer")
    assert p.returncode == 2 and "ImageClassifier" in p.stderr
