"""Evaluation runs on its own random streams: how often a run validates never changes what it
trains, and a run stopped at N (validating there) then resumed to 2N equals a straight run to 2N.
Also: the data order and augmentation do not depend on the number of loader workers."""
import os
import subprocess
import sys

import pytest
import torch

from torchcv.config import load_config
from torchcv.engine.checkpoint import load_checkpoint
from torchcv.engine.trainer import Trainer

from conftest import ROOT

DET = "configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml"
DET_SMALL = ["data.batch_size=2", "data.num_workers=0", "model.min_size=128", "model.max_size=160",
             "train.log_interval=1", "train.plot=false", "lr_schedule={policy: constant}", "optimizer.lr=0.002",
             "data.sampler.aspect_ratio_group_factor=-1", "train.keep_checkpoints=0"]
SEG = "configs/seg/shapes/lraspp_mobilenet_v3_large_shapes.yaml"
SEG_SMALL = ["data.batch_size=4", "data.val_batch_size=4", "data.num_workers=0", "data.train.transforms.1.size=48",
             "train.log_interval=1", "train.plot=false", "lr_schedule={policy: constant}", "train.keep_checkpoints=0"]


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes_det")
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out", str(out),
                    "--train", "6", "--val", "2", "--seed", "7"], check=True, capture_output=True)
    return str(out)


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes_seg")
    from datasets.generate_shapes_seg import generate
    generate(str(out), size=48, n_train=12, n_val=4, n_test=2, seed=3)
    return str(out)


def train(config, work_dir, overrides, resume=False):
    Trainer(load_config(config, overrides), str(work_dir), resume=resume or None).train()


def weights(work_dir, name):
    return load_checkpoint(os.path.join(work_dir, "checkpoints", name))["model"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_detection_val_interval_does_not_change_training(tmp_path, det_data):
    base = [f"data.root={det_data}", *DET_SMALL, "train.max_iters=6", "train.checkpoint_interval=6"]
    train(DET, tmp_path / "often", base + ["train.val_interval=2"])
    train(DET, tmp_path / "never", base + ["train.val_interval=1000"])
    assert_same(weights(tmp_path / "often", "iter_6.pth"), weights(tmp_path / "never", "iter_6.pth"))


def test_detection_stop_validate_resume_equals_straight_and_workers_do_not_matter(tmp_path, det_data):
    base = [f"data.root={det_data}", *DET_SMALL, "train.val_interval=1000", "train.checkpoint_interval=3"]
    train(DET, tmp_path / "straight", base + ["train.max_iters=6"])
    # stopped at 3 (it validates at its end), two loader workers; resumed to 6 without workers
    train(DET, tmp_path / "split", base + ["train.max_iters=3", "data.num_workers=2"])
    train(DET, tmp_path / "split", base + ["train.max_iters=6"], resume=True)
    assert_same(weights(tmp_path / "straight", "iter_6.pth"), weights(tmp_path / "split", "iter_6.pth"))


def test_segmentation_val_interval_and_resume(tmp_path, seg_data):
    base = [f"data.root={seg_data}", *SEG_SMALL, "train.checkpoint_interval=2"]
    train(SEG, tmp_path / "straight", base + ["train.max_iters=4", "train.val_interval=1000"])
    train(SEG, tmp_path / "often", base + ["train.max_iters=4", "train.val_interval=1"])
    train(SEG, tmp_path / "split", base + ["train.max_iters=2", "train.val_interval=1000"])
    train(SEG, tmp_path / "split", base + ["train.max_iters=4", "train.val_interval=1000"], resume=True)
    ref = weights(tmp_path / "straight", "iter_4.pth")
    assert_same(ref, weights(tmp_path / "often", "iter_4.pth"))
    assert_same(ref, weights(tmp_path / "split", "iter_4.pth"))
