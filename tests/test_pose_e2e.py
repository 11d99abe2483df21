"""CPM and OpenPose end to end on tiny stick-figure data: the run scripts (train -> resume -> val ->
test), tools/demo.py and tools/browse_dataset.py, and bad input that stops with one line."""
import importlib.util
import json
import os

import cv2
import numpy as np
import pytest
import torch

from torchcv.cli import train_main
from torchcv.config import load_config
from torchcv.registry import TASKS

from conftest import ROOT, run
from test_bad_input import one_line_error

OPENPOSE = "scripts/pose/shapes/run_openpose_shapes.sh"
CPM = "scripts/pose/shapes/run_cpm_shapes.sh"
OPENPOSE_CFG = "configs/pose/shapes/openpose_light_shapes.yaml"
CPM_CFG = "configs/pose/shapes/cpm_light_shapes.yaml"
SMALL = ["data.batch_size=2", "data.val_batch_size=4", "data.num_workers=0", "train.log_interval=1",
         "train.checkpoint_interval=3", "train.val_interval=100", "lr_schedule.warmup_iters=0"]
CPM_SMALL = ["data.train.input_size=64", "data.val.input_size=64"]


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("pose_e2e") / "data"
    from datasets.generate_stick_figures import generate
    generate(str(out), seed=9, n_train=4, n_val=3, size=96)
    return out


def test_openpose_train_resume_val_test(figures, tmp_path):
    env = {"TORCHCV_POSE_SHAPES": str(figures), "WORK_ROOT": str(tmp_path / "work")}
    work = tmp_path / "work" / "pose" / "shapes" / "openpose_light" / "e2e"
    run(["bash", OPENPOSE, "train", "e2e", "train.max_iters=3", *SMALL], env=env)
    p = run(["bash", OPENPOSE, "resume", "e2e", "train.max_iters=6", *SMALL], env=env)
    assert "resumed from" in p.stdout and "iter_3.pth" in p.stdout
    recs = [json.loads(line) for line in open(work / "metrics.jsonl")]
    train = [r for r in recs if r["mode"] == "train"]
    assert [r["iter"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert all("loss_paf" in r and "loss_heatmap" in r for r in train)
    vals = [r for r in recs if r["mode"] == "val"]
    assert [v["iter"] for v in vals] == [3, 6] and "keypoints_AP" in vals[-1]
    assert {"pose_people.png", "pose_heatmaps.png", "pose_pafs.png"} <= set(os.listdir(work / "plots"))
    run(["bash", OPENPOSE, "val", "e2e", *SMALL], env=env)
    assert json.load(open(work / "metrics_val.json"))["split"] == "val"
    run(["bash", OPENPOSE, "test", "e2e", *SMALL], env=env)
    metrics = json.load(open(work / "test" / "metrics_test.json"))
    assert {"keypoints_AP", "keypoints_AP50", "keypoints_AR"} <= set(metrics) and "bbox_AP" not in metrics
    assert (work / "test" / "pose_pafs.png").is_file()


def test_cpm_train_and_test_on_crops(figures, tmp_path):
    env = {"TORCHCV_POSE_SHAPES": str(figures), "WORK_ROOT": str(tmp_path / "work")}
    work = tmp_path / "work" / "pose" / "shapes" / "cpm_light" / "e2e"
    run(["bash", CPM, "train", "e2e", "train.max_iters=3", *SMALL, *CPM_SMALL], env=env)
    vals = [r for r in map(json.loads, open(work / "metrics.jsonl")) if r["mode"] == "val"]
    assert "PCK" in vals[-1] and "PCKh" in vals[-1] and 0 <= vals[-1]["PCK"] <= 1
    assert {"pose_predictions.png", "pose_heatmaps.png"} <= set(os.listdir(work / "plots"))
    run(["bash", CPM, "test", "e2e", *SMALL, *CPM_SMALL], env=env)
    res = json.load(open(work / "test" / "results_pck.json"))
    crops = json.load(open(figures / "annotations" / "crops_val.json"))["annotations"]
    assert len(res) == len(crops) and all(len(r["keypoints"]) == 17 for r in res)
    assert "mean" in (work / "test" / "pck_per_joint.txt").read_text()


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("config,extra", [(OPENPOSE_CFG, []), (CPM_CFG, CPM_SMALL)])
def test_demo_and_browse_draw_skeletons(figures, tmp_path, config, extra):
    over = [f"data.root={figures}", "data.num_workers=0", *extra]
    cfg = load_config(config, over)
    model = TASKS.get(cfg["task"])(cfg).build_model()
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    images = figures / "val"
    assert _tool("demo").main([config, str(tmp_path / "weights.pth"), str(images), "--out-dir",
                               str(tmp_path / "demo"), "--score-thr", "0", *over]) == 0
    src = cv2.imread(str(sorted(images.iterdir())[0]))
    drawn = cv2.imread(str(tmp_path / "demo" / sorted(os.listdir(tmp_path / "demo"))[0]))
    assert drawn.shape == src.shape                           # drawn on the file's own pixels
    assert _tool("browse_dataset").main([config, "--num", "2", "--out-dir", str(tmp_path / "browse"), *over]) == 0
    pics = sorted(os.listdir(tmp_path / "browse"))
    assert len(pics) == 2
    sample = cv2.imread(str(tmp_path / "browse" / pics[0]))
    side = 64 if extra else 96
    assert sample.shape == (side, side, 3)


# ---- bad input: one line naming the file / key and the fix ---------------------------------------
def _train(config, figures, tmp_path, *over):
    return train_main([config, "--work-dir", str(tmp_path / "wd"), f"data.root={figures}", *SMALL,
                       "train.max_iters=1", "train.plot=false", *over])


def test_skeleton_with_unknown_joints(figures, tmp_path, capsys):
    rc = _train(OPENPOSE_CFG, figures, tmp_path, "+data.train.skeleton=[[0, 1], [3, 40]]")
    one_line_error(capsys, rc, 2, "skeleton limb [3, 40] references a joint outside 0..16")
    rc = _train(OPENPOSE_CFG, figures, tmp_path, "+model.skeleton=[[0, 1], [3, 40]]")
    one_line_error(capsys, rc, 2, "model (OpenPose)", "skeleton limb [3, 40]")


def test_model_and_data_disagree(figures, tmp_path, capsys):
    rc = _train(OPENPOSE_CFG, figures, tmp_path, "+model.skeleton=[[0, 1], [1, 2]]")
    one_line_error(capsys, rc, 2, "follow another skeleton", "set model.skeleton: [[15, 13]")
    rc = _train(CPM_CFG, figures, tmp_path, *CPM_SMALL, "model.num_keypoints=16")
    one_line_error(capsys, rc, 2, "17 keypoints", "set model.num_keypoints: 17")


def test_crop_annotation_without_centre(figures, tmp_path, capsys):
    data = json.load(open(figures / "annotations" / "crops_train.json"))
    del data["annotations"][1]["center"]
    bad = tmp_path / "crops.json"
    bad.write_text(json.dumps(data))
    rc = _train(CPM_CFG, figures, tmp_path, *CPM_SMALL, f"data.train.ann_file={bad}")
    one_line_error(capsys, rc, 1, "crops.json: annotation 1 (image", "has no 'center'/'scale'")


def test_ignore_mask_of_the_wrong_size(figures, tmp_path, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    for f in os.listdir(figures / "train"):
        cv2.imwrite(str(masks / f), np.zeros((90, 96), np.uint8))
    rc = _train(OPENPOSE_CFG, figures, tmp_path, f"+data.train.mask_dir={masks}")
    line = one_line_error(capsys, rc, 1, "ignore mask is 96x90 (WxH)", "is 96x96; masks must have the image's size")
    assert str(masks) in line
