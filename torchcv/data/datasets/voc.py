"""Pascal VOC detection (XML annotations): VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}.

Labels 1..20 in ``VOC_CLASSES`` order (0 = background). ``difficult`` objects are kept in the
target (``difficult`` key) for VOC mAP, which ignores them, and left out of training with
``use_difficult: false`` (default). Boxes are converted from VOC's 1-based inclusive pixels to
0-based xyxy (x1 - 1, y1 - 1, x2, y2); out-of-image boxes are clipped, degenerate ones dropped
(both counted); unknown class names raise.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any, List, Optional, Sequence

import numpy as np

from ...registry import DATASETS
from ...utils.errors import DataError, MissingFileError
from .det_base import DetectionDataset, clean_boxes

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]


def parse_voc_xml(path: str):
    if not os.path.isfile(path):
        raise MissingFileError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}: corrupt XML ({e})") from None
    try:
        size = root.find("size")
        w, h = int(size.find("width").text), int(size.find("height").text)
        objs = []
        for o in root.findall("object"):
            bb = o.find("bndbox")
            box = [float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
            diff = o.find("difficult")
            objs.append({"name": o.find("name").text.strip(), "box": [box[0] - 1, box[1] - 1, box[2], box[3]],
                         "difficult": int(diff.text) if diff is not None else 0})
    except (AttributeError, TypeError, ValueError):
        raise DataError(f"{path}: malformed VOC annotation (need size/width/height and, per object, name and "
                        f"bndbox/xmin/ymin/xmax/ymax as numbers)") from None
    return root.findtext("filename"), w, h, objs


@DATASETS.register()
class VOCDetection(DetectionDataset):
    def __init__(self, root: str, split: str = "trainval", transforms: Optional[Sequence[Any]] = None,
                 classes: Optional[List[str]] = None, use_difficult: bool = False, skip_empty: bool = False,
                 min_box_size: float = 1.0):
        super().__init__(transforms, with_masks=False, min_box_size=min_box_size)
        self.classes = ["__background__"] + list(classes or VOC_CLASSES)
        index = {c: i for i, c in enumerate(self.classes)}
        list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
        if not os.path.isfile(list_file):
            raise MissingFileError(f"VOC split list not found: {list_file} (root should be e.g. VOCdevkit/VOC2007)")
        with open(list_file) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        for n, img_id in enumerate(ids):
            xml = os.path.join(root, "Annotations", f"{img_id}.xml")
            fname, w, h, objs = parse_voc_xml(xml)
            unknown = [o["name"] for o in objs if o["name"] not in index]
            if unknown:
                raise DataError(f"{xml}: class '{unknown[0]}' is not in classes {self.classes[1:]}")
            if not use_difficult:
                objs = [o for o in objs if not o["difficult"]]
            raw = np.array([o["box"] for o in objs], np.float32).reshape(-1, 4)
            boxes, keep = clean_boxes(raw, w, h, min_box_size)
            self.stats["clipped_boxes"] += int((np.abs(boxes - raw).sum(1) > 0)[keep].sum())
            self.stats["dropped_boxes"] += int((~keep).sum())
            objs = [o for o, k in zip(objs, keep) if k]
            if not objs and skip_empty:
                self.stats["skipped_empty_images"] += 1
                continue
            path = os.path.join(root, "JPEGImages", fname or f"{img_id}.jpg")
            self.records.append({"path": path, "image_id": n, "width": w, "height": h, "boxes": boxes[keep],
                                 "labels": np.array([index[o["name"]] for o in objs], np.int64),
                                 "difficult": np.array([o["difficult"] for o in objs], np.int64)})
        self.log_stats(f"VOCDetection({root}, {split})")

    def __getitem__(self, index: int):
        image, target, meta = super().__getitem__(index)
        diff = self.records[index]["difficult"]
        if len(diff) == len(target["labels"]):
            import torch
            target["difficult"] = torch.as_tensor(diff)
        return image, target, meta
