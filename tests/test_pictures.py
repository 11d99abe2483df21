"""tools/demo.py and tools/browse_dataset.py for every task, routed through the task: top-k labels
(classification), a colour overlay (segmentation), boxes and masks (detection)."""
import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from torchcv.config import load_config
from torchcv.registry import TASKS

from conftest import ROOT


def tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def datasets_(tmp_path_factory, shapes_cls):
    root = tmp_path_factory.mktemp("pictures")
    from datasets.generate_shapes_seg import generate
    generate(str(root / "seg"), size=48, n_train=4, n_val=2, n_test=2, seed=2)
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/generate_shapes_det.py"), "--out",
                    str(root / "det"), "--train", "2", "--val", "2", "--seed", "4"], check=True, capture_output=True)
    return {"cls": ("configs/cls/shapes/resnet18_shapes.yaml", shapes_cls, os.path.join(shapes_cls, "test", "star")),
            "seg": ("configs/seg/shapes/lraspp_mobilenet_v3_large_shapes.yaml", str(root / "seg"),
                    str(root / "seg" / "JPEGImages")),
            "det": ("configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml", str(root / "det"),
                    str(root / "det" / "val"))}


@pytest.mark.parametrize("kind", ["cls", "seg", "det"])
def test_demo_and_browse_for_every_task(kind, datasets_, tmp_path):
    config, data, images = datasets_[kind]
    over = [f"data.root={data}", "data.num_workers=0"]
    cfg = load_config(config, over)
    model = TASKS.get(cfg["task"])(cfg).build_model()
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    out = tmp_path / "demo"
    assert tool("demo").main([config, str(tmp_path / "weights.pth"), images, "--out-dir", str(out),
                              "--score-thr", "0", *over]) == 0
    files = sorted(os.listdir(images))[:3] if kind != "seg" else sorted(os.listdir(images))
    pngs = sorted(os.listdir(out))
    assert len(pngs) == len([f for f in os.listdir(images) if f.lower().endswith((".png", ".jpg"))])
    src = cv2.imread(os.path.join(images, files[0]))
    drawn = cv2.imread(str(out / (os.path.splitext(files[0])[0] + ".png")))
    if kind == "cls":  # small images are enlarged so the labels are legible
        k = drawn.shape[0] // src.shape[0]
        assert k >= 5 and drawn.shape == (src.shape[0] * k, src.shape[1] * k, 3)
        src = cv2.resize(src, drawn.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    assert drawn.shape == src.shape  # drawn on the file's own pixels
    if kind != "det":  # labels / overlay are always drawn; a random detector may find nothing
        assert np.abs(drawn.astype(int) - src.astype(int)).sum() > 0
    browse = tmp_path / "browse"
    assert tool("browse_dataset").main([config, "--split", "train", "--num", "2", "--out-dir", str(browse),
                                        *over]) == 0
    assert sorted(os.listdir(browse)) == ["train_0000.png", "train_0001.png"]
    pic = cv2.imread(str(browse / "train_0000.png"))
    assert pic.ndim == 3 and pic.std() > 5  # a picture, not a blank or normalised-garbage image


def test_detection_prediction_is_drawn_in_file_coordinates():
    cfg = load_config("configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml", check_schema=True)
    task = TASKS.get("detection")(cfg)
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    out = {"boxes": torch.tensor([[5.0, 5.0, 25.0, 15.0]]), "labels": torch.tensor([1]),
           "scores": torch.tensor([0.9])}
    meta = {"orig_size": (40, 60), "input_size": (20, 30)}  # the transforms halved the image
    pic = task.draw_prediction(image, out, meta, None, score_thr=0.5)
    # the box (5, 5, 25, 15) in input pixels is (10, 10, 50, 30) in the file's pixels
    assert pic[20, 10].any() and pic[20, 50].any() and pic[30, 30].any() and pic[10, 30].any()
    assert not pic[20, 30].any() and not pic[35:, :].any() and not pic[:, 52:].any()
    assert task.draw_prediction(image, {**out, "scores": torch.tensor([0.1])}, meta, None, 0.5).sum() == 0
