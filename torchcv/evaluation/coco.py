"""COCO box and mask AP through pycocotools, with a per-class AP table and a results JSON.

Predictions are mapped back to the annotation file's coordinates (``meta['orig_size']`` vs
``meta['input_size']``) and to its category ids (``dataset.label_to_cat``).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import EVALUATORS, ConfigError
from ..utils import dist
from .base import Evaluator

logger = logging.getLogger("torchcv")
STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
KEYPOINT_STAT_NAMES = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
IOU_TYPES = ("bbox", "segm", "keypoints")


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def encode_masks(masks: np.ndarray) -> List[dict]:
    from pycocotools import mask as mask_utils
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def _count_keypoints(gt) -> None:
    """OKS evaluation reads ``num_keypoints`` of every ground-truth annotation (instances without
    labelled keypoints are ignored); fill it in where a file leaves it out."""
    for ann in gt.dataset["annotations"]:
        if "num_keypoints" not in ann:
            kp = ann.get("keypoints") or []
            ann["num_keypoints"] = sum(1 for v in kp[2::3] if v > 0)


@EVALUATORS.register()
class CocoEvaluator(Evaluator):
    """Args:
        iou_types: ``bbox``, ``segm``, ``keypoints``; default: ``bbox``, plus ``segm`` when the dataset
            has masks and ``keypoints`` when it has keypoints.
        mask_threshold: probability above which a pasted mask pixel is foreground.
        classwise: compute the per-class AP table (``report()``).

    Keypoints are scored by OKS (pycocotools) with the dataset's own sigmas (``keypoint_meta``;
    pycocotools would otherwise use COCO's 17 whatever the skeleton).
    """

    def __init__(self, dataset, iou_types: Optional[Sequence[str]] = None, mask_threshold: float = 0.5,
                 classwise: bool = True):
        if not hasattr(dataset, "coco"):
            raise ConfigError(f"CocoEvaluator needs a COCO-format dataset (with a .coco ground truth); "
                              f"{type(dataset).__name__} has none -- use VOCEvaluator or convert it to COCO")
        super().__init__(dataset)
        default = ["bbox"] + (["segm"] if getattr(dataset, "with_masks", False) else []) + \
            (["keypoints"] if getattr(dataset, "with_keypoints", False) else [])
        self.iou_types = list(iou_types or default)
        unknown = [t for t in self.iou_types if t not in IOU_TYPES]
        if unknown:
            raise ConfigError(f"CocoEvaluator.iou_types: {unknown} unknown; use {', '.join(IOU_TYPES)}")
        self.sigmas = None
        if "keypoints" in self.iou_types:
            meta = getattr(dataset, "keypoint_meta", None)
            if meta is None:
                raise ConfigError("CocoEvaluator: iou_types has 'keypoints' but the dataset has no keypoints; set "
                                  "with_keypoints: true on it")
            if not meta.sigmas:
                raise ConfigError(f"CocoEvaluator: OKS needs one sigma per keypoint ({meta.num_keypoints}: "
                                  f"{', '.join(meta.names[:5])} ...); give the dataset's sigmas: [...]")
            self.sigmas = np.asarray(meta.sigmas, dtype=np.float64)
        self.mask_threshold = mask_threshold
        self.classwise = classwise
        self.image_ids: List[int] = []
        self._per_class: Dict[str, Dict[str, float]] = {}

    def process(self, outputs: List[Dict[str, torch.Tensor]], targets: Any, metas: List[dict]) -> None:
        label_to_cat = getattr(self.dataset, "label_to_cat", None)
        for out, meta in zip(outputs, metas):
            self.image_ids.append(int(meta["image_id"]))
            boxes = out["boxes"].detach().float().cpu()
            if len(boxes) == 0:
                continue
            (oh, ow), (ih, iw) = meta["orig_size"], meta.get("input_size", meta["orig_size"])
            if (oh, ow) != (ih, iw):
                boxes = boxes * torch.tensor([ow / iw, oh / ih, ow / iw, oh / ih])
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
            scores = out["scores"].detach().float().cpu().tolist()
            labels = out["labels"].detach().cpu().tolist()
            kps = None
            if "keypoints" in self.iou_types and "keypoints" in out:
                kp = out["keypoints"].detach().float().cpu().clone()
                if kp.shape[1] != len(self.sigmas):
                    raise ConfigError(f"the model predicts {kp.shape[1]} keypoints but the dataset's OKS sigmas "
                                      f"cover {len(self.sigmas)}; set the model's num_keypoints to "
                                      f"{len(self.sigmas)}")
                if (oh, ow) != (ih, iw):
                    kp[..., 0] *= ow / iw
                    kp[..., 1] *= oh / ih
                kps = kp.flatten(1).tolist()
            rles = None
            if "segm" in self.iou_types and "masks" in out:
                m = out["masks"].detach().float()
                if (oh, ow) != (ih, iw):
                    m = F.interpolate(m, size=(oh, ow), mode="bilinear", align_corners=False)
                rles = encode_masks((m[:, 0] > self.mask_threshold).cpu().numpy())
            for k in range(len(xywh)):
                r = {"image_id": int(meta["image_id"]),
                     "category_id": int(label_to_cat[labels[k]] if label_to_cat else labels[k]),
                     "bbox": [round(v, 3) for v in xywh[k]], "score": round(float(scores[k]), 5)}
                if rles is not None:
                    r["segmentation"] = rles[k]
                if kps is not None:
                    r["keypoints"] = [round(v, 2) for v in kps[k]]
                self.results.append(r)

    def collect(self) -> None:
        super().collect()
        self.image_ids = sorted({i for part in dist.all_gather_object(self.image_ids) for i in part})

    def compute_metrics(self) -> Dict[str, float]:
        from pycocotools.cocoeval import COCOeval
        results, image_ids = self.results, self.image_ids
        gt = self.dataset.coco
        metrics: Dict[str, float] = {}
        for iou_type in self.iou_types:
            names = KEYPOINT_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES
            field = {"segm": "segmentation", "keypoints": "keypoints"}.get(iou_type)
            if field and results and field not in results[0]:
                continue  # the model does not predict masks / keypoints
            if not results:
                metrics.update({f"{iou_type}_{n}": 0.0 for n in names})
                continue
            dets = [r for r in results] if iou_type == "segm" else [{k: v for k, v in r.items() if k != "segmentation"}
                                                                    for r in results]
            if iou_type == "keypoints":
                _count_keypoints(gt)
            with _quiet():
                dt = gt.loadRes(copy.deepcopy(dets))
                ev = COCOeval(gt, dt, iou_type)
                ev.params.imgIds = image_ids
                if iou_type == "keypoints":
                    ev.params.kpt_oks_sigmas = self.sigmas
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            # -1 (COCO convention) where a slice has no ground truth, e.g. APl without large objects
            metrics.update({f"{iou_type}_{n}": float(v) for n, v in zip(names, ev.stats)})
            if self.classwise:
                prec = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
                per = {}
                for k, cat_id in enumerate(ev.params.catIds):
                    p = prec[:, :, k, 0, -1]
                    p50 = prec[0, :, k, 0, -1]
                    per[gt.cats[cat_id]["name"]] = (float(p[p > -1].mean()) if (p > -1).any() else float("nan"),
                                                    float(p50[p50 > -1].mean()) if (p50 > -1).any() else float("nan"))
                self._per_class[iou_type] = per
        return metrics  # Task.evaluate logs report() once, on rank 0

    def report(self) -> str:
        lines = []
        for iou_type, per in self._per_class.items():
            lines.append(f"{iou_type} per-class AP")
            lines.append(f"{'class':<20} {'AP':>7} {'AP50':>7}")
            for name, (ap, ap50) in per.items():
                lines.append(f"{name:<20} {ap:7.3f} {ap50:7.3f}")
        return "\n".join(lines)

    def write(self, out_dir: str) -> List[str]:
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for iou_type in self.iou_types:
            field = {"segm": "segmentation", "keypoints": "keypoints"}.get(iou_type)
            if field and not any(field in r for r in self.results):
                continue
            dets = self.results if iou_type == "segm" else [{k: v for k, v in r.items() if k != "segmentation"}
                                                            for r in self.results]
            path = os.path.join(out_dir, f"results_{iou_type}.json")
            with open(path, "w") as f:
                json.dump(dets, f)
            paths.append(path)
        if self._per_class:
            with open(os.path.join(out_dir, "per_class_ap.txt"), "w") as f:
                f.write(self.report() + "\n")
        return paths
