"""Pascal VOC detection mAP: per class AP at IoU 0.5, 2007 11-point interpolation or the area
under the precision envelope (VOC2010+). ``difficult`` ground truth is neither a hit nor a miss.
Ground truth comes from the targets passed to ``process`` (same coordinates as the outputs)."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from ..registry import EVALUATORS
from .base import Evaluator


def average_precision(recall: np.ndarray, precision: np.ndarray, use_07: bool) -> float:
    if use_07:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.arange(0.0, 1.1, 0.1)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def _iou(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(gts[:, 0], box[0]); iy0 = np.maximum(gts[:, 1], box[1])
    ix1 = np.minimum(gts[:, 2], box[2]); iy1 = np.minimum(gts[:, 3], box[3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]) - inter
    return inter / np.maximum(area, 1e-12)


@EVALUATORS.register()
class VOCEvaluator(Evaluator):
    def __init__(self, dataset, iou_thresh: float = 0.5, use_07_metric: bool = True):
        super().__init__(dataset)
        self.iou_thresh, self.use_07 = iou_thresh, use_07_metric
        self.per_class: Dict[str, float] = {}

    def process(self, outputs, targets, metas) -> None:
        for out, tgt, meta in zip(outputs, targets, metas):
            diff = tgt.get("difficult", torch.zeros(len(tgt["labels"]), dtype=torch.int64))
            self.results.append((meta["image_id"],
                               out["boxes"].detach().float().cpu().numpy(), out["scores"].detach().float().cpu().numpy(),
                               out["labels"].detach().cpu().numpy(), tgt["boxes"].float().cpu().numpy(),
                               tgt["labels"].cpu().numpy(), diff.cpu().numpy().astype(bool)))

    def compute_metrics(self) -> Dict[str, float]:
        items = self.results
        names = getattr(self.dataset, "classes", None)
        labels = sorted({int(l) for it in items for l in it[5]})
        aps, aps_other = {}, {}  # 11-point, area
        for c in labels:
            dets, n_pos, gts = [], 0, {}
            for k, (_, pb, ps, pl, gb, gl, gd) in enumerate(items):
                sel = gl == c
                gts[k] = (gb[sel], gd[sel], np.zeros(sel.sum(), bool))
                n_pos += int((~gd[sel]).sum())
                for b, s in zip(pb[pl == c], ps[pl == c]):
                    dets.append((s, k, b))
            dets.sort(key=lambda d: -d[0])
            tp = np.zeros(len(dets)); fp = np.zeros(len(dets))
            for i, (_, k, b) in enumerate(dets):
                g, d, used = gts[k]
                if len(g) == 0:
                    fp[i] = 1
                    continue
                ious = _iou(b, g)
                j = int(ious.argmax())
                if ious[j] >= self.iou_thresh:
                    if d[j]:
                        continue
                    if not used[j]:
                        tp[i], used[j] = 1, True
                    else:
                        fp[i] = 1
                else:
                    fp[i] = 1
            tp, fp = np.cumsum(tp), np.cumsum(fp)
            rec = tp / max(n_pos, 1)
            prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            name = names[c] if names and c < len(names) else str(c)
            aps[name] = average_precision(rec, prec, True)
            aps_other[name] = average_precision(rec, prec, False)
        self.per_class = aps if self.use_07 else aps_other
        m07 = float(np.mean(list(aps.values()))) if aps else 0.0
        marea = float(np.mean(list(aps_other.values()))) if aps_other else 0.0
        return {"mAP": m07 if self.use_07 else marea, "mAP_07": m07, "mAP_area": marea}

    def report(self) -> str:
        return "\n".join([f"{'class':<16} {'AP50':>7}"] + [f"{k:<16} {v:7.3f}" for k, v in self.per_class.items()])

    def write(self, out_dir: str) -> None:
        import json
        import os
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "voc_per_class_ap.json"), "w") as f:
            json.dump(self.per_class, f, indent=1)
