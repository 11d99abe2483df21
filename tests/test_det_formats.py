"""VOC XML and PennFudan layouts, their COCO converters, and VOC mAP."""
import os
import subprocess
import sys

import cv2
import numpy as np
import torch

from torchcv.data.datasets.coco import CocoDetection
from torchcv.data.datasets.pennfudan import PennFudanDataset
from torchcv.data.datasets.voc import VOCDetection
from torchcv.evaluation.voc import VOCEvaluator, average_precision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XML = """<annotation><filename>{name}.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>
{objs}</annotation>"""
OBJ = "<object><name>{c}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>" \
      "<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"


def _voc(tmp_path):
    root = tmp_path / "VOC2007"
    for d in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    objs = {"a": [("cat", 0, (5, 5, 30, 40)), ("dog", 1, (20, 10, 60, 30)), ("dog", 0, (40, 2, 90, 20))],
            "b": [("person", 0, (1, 1, 64, 48))]}
    for name, os_ in objs.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), np.zeros((48, 64, 3), np.uint8))
        (root / "Annotations" / f"{name}.xml").write_text(
            XML.format(name=name, objs="".join(OBJ.format(c=c, d=d, b=b) for c, d, b in os_)))
    (root / "ImageSets/Main/trainval.txt").write_text("a\nb\n")
    return root


def test_voc_dataset_and_converter(tmp_path):
    root = _voc(tmp_path)
    ds = VOCDetection(str(root), "trainval")
    img, t, _ = ds[0]
    assert t["labels"].tolist() == [8, 12]            # cat, dog (the difficult dog is left out)
    assert t["boxes"][0].tolist() == [4, 4, 30, 40]   # 1-based inclusive -> 0-based xyxy
    assert t["boxes"][1].tolist() == [39, 1, 64, 20] and ds.stats["clipped_boxes"] == 1
    with_diff = VOCDetection(str(root), "trainval", use_difficult=True)
    assert with_diff[0][1]["difficult"].tolist() == [0, 1, 0]
    out = tmp_path / "voc.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/voc2coco.py"), str(root), "--out", str(out)],
                   check=True, capture_output=True)
    coco = CocoDetection(str(root / "JPEGImages"), str(out), with_masks=False)
    assert len(coco) == 2 and coco.classes[8] == "cat"


def test_voc_map_ground_truth_is_one_and_11_point():
    class DS:
        classes = ["bg", "a", "b"]
    ev = VOCEvaluator(DS())
    gt = {"boxes": torch.tensor([[0., 0, 10, 10], [20, 20, 40, 40]]), "labels": torch.tensor([1, 2])}
    ev.process([{"boxes": gt["boxes"], "labels": gt["labels"], "scores": torch.tensor([0.9, 0.8])}], [gt],
               [{"image_id": 0}])
    m = ev.compute()
    assert m["mAP_07"] == 1.0 and m["mAP_area"] == 1.0
    # half recall at full precision: 11-point gives 6/11, area gives 0.5
    r, p = np.array([0.5]), np.array([1.0])
    assert abs(average_precision(r, p, True) - 6 / 11) < 1e-9 and abs(average_precision(r, p, False) - 0.5) < 1e-9


def test_pennfudan_layout_and_converter(tmp_path):
    root = tmp_path / "PennFudanPed"
    (root / "PNGImages").mkdir(parents=True)
    (root / "PedMasks").mkdir()
    for i in range(3):
        cv2.imwrite(str(root / "PNGImages" / f"FudanPed{i:05d}.png"), np.full((40, 50, 3), 100, np.uint8))
        m = np.zeros((40, 50), np.uint8)
        m[5:20, 3:10] = 1
        m[10:35, 20:40] = 2
        cv2.imwrite(str(root / "PedMasks" / f"FudanPed{i:05d}_mask.png"), m)
    ds = PennFudanDataset(str(root))
    img, t, _ = ds[0]
    assert t["boxes"].tolist() == [[3, 5, 9, 19], [20, 10, 39, 34]] and t["labels"].tolist() == [1, 1]
    assert t["masks"].shape == (2, 40, 50) and int(t["masks"][1].sum()) == 25 * 20
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets/pennfudan2coco.py"), str(root), "--num-test", "1"],
                   check=True, capture_output=True)
    tr = CocoDetection(str(root / "PNGImages"), str(root / "annotations/instances_train.json"))
    te = CocoDetection(str(root / "PNGImages"), str(root / "annotations/instances_test.json"))
    assert len(tr) == 2 and len(te) == 1
    assert torch.equal(tr[0][1]["masks"].sum((1, 2)), torch.tensor([15 * 7, 25 * 20]))
