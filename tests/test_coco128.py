"""Real COCO data (../shared/data/coco128: 128 train2017 images, their real instance annotations with
crowd RLE regions and a grayscale image), read in place through the real loader, evaluator and trainer."""
import json
import os

import pytest
import torch

from torchcv.config import load_config
from torchcv.data.datasets.coco import CocoDetection
from torchcv.engine.trainer import Trainer
from torchcv.evaluation.coco import CocoEvaluator

from conftest import ROOT

COCO128 = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "coco128"))
ANN = os.path.join(COCO128, "annotations", "instances_train2017.json")
IMAGES = os.path.join(COCO128, "train2017")
pytestmark = pytest.mark.skipif(not os.path.isfile(ANN), reason=f"coco128 not found at {COCO128}")


@pytest.fixture(scope="module")
def raw():
    with open(ANN) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def coco():
    return CocoDetection(IMAGES, ANN, with_masks=True)


def test_counts_crowds_and_grayscale(coco, raw):
    assert len(raw["images"]) == len(coco) == 128 and coco.num_classes == 81  # 80 categories + background
    crowd = sum(a["iscrowd"] for a in raw["annotations"])
    instances = sum(len(r["boxes"]) for r in coco.records)
    dropped = coco.stats["dropped_boxes"]
    assert crowd == 10 and instances + dropped == len(raw["annotations"]) - crowd  # crowds never train
    # category ids 1..90 with gaps map to contiguous labels 1..80 and back
    assert sorted(coco.label_to_cat.values()) == sorted(c["id"] for c in raw["categories"])
    gray = [img["file_name"] for img in raw["images"]
            if __import__("cv2").imread(os.path.join(IMAGES, img["file_name"]), -1).ndim == 2]
    assert len(gray) == 1
    i = next(k for k, r in enumerate(coco.records) if r["path"].endswith(gray[0]))
    img, t, meta = coco[i]
    assert img.shape[0] == 3 and meta["orig_size"] == tuple(img.shape[-2:])
    assert t["masks"].shape == (len(t["boxes"]), *img.shape[-2:]) and t["masks"].dtype == torch.uint8


def test_ground_truth_fed_back_gives_ap_1(coco):
    ev = CocoEvaluator(coco)
    for i in range(len(coco)):
        _, t, meta = coco[i]
        ev.process([{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"])),
                     "masks": t["masks"][:, None].float()}], [t], [meta])
    m = ev.compute()
    assert m["bbox_AP"] == pytest.approx(1.0) and m["segm_AP"] == pytest.approx(1.0)
    assert m["bbox_AP50"] == pytest.approx(1.0) and m["segm_AR100"] == pytest.approx(1.0)


def test_a_few_training_iterations_on_real_images(tmp_path):
    cfg = load_config("configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml", [
        "model.num_classes=81", f"data.train.img_dir={IMAGES}", f"data.train.ann_file={ANN}",
        f"data.val.img_dir={IMAGES}", f"data.val.ann_file={ANN}", "+data.val.max_images=4",
        "data.batch_size=2", "data.num_workers=0", "model.min_size=192", "model.max_size=256",
        "train.max_iters=4", "train.val_interval=4", "train.log_interval=1", "train.plot=false",
        "lr_schedule.warmup_iters=0"])
    metrics = Trainer(cfg, str(tmp_path / "wd")).train()
    assert {"bbox_AP", "segm_AP"} <= set(metrics)
    with open(tmp_path / "wd" / "metrics.jsonl") as f:
        recs = [json.loads(line) for line in f]
    train = [r for r in recs if r["mode"] == "train"]
    assert [r["iter"] for r in train] == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor([r["loss"], r["loss_mask"], r["loss_classifier"]])).all() for r in train)
