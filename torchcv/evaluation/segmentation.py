"""Semantic segmentation metrics from a confusion matrix.

The matrix (rows = ground truth, columns = prediction) is accumulated per batch with one
``bincount`` and summed over ranks with ``all_reduce_sum``, so every rank returns the same numbers.
Metrics (fractions in [0, 1]): ``mIoU`` (mean over classes present in the ground truth or the
predictions), ``aAcc`` (pixel accuracy), ``mAcc`` (mean per-class recall), ``fwIoU``
(frequency-weighted IoU). ``report()`` gives the per-class table; ``write(out_dir)`` saves colour
PNG predictions (palette PNGs, at each image's original size) when predictions were kept (test mode).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..registry import EVALUATORS
from ..utils import dist
from .base import Evaluator


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255):
    keep = target != ignore_index
    idx = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(cm: torch.Tensor) -> Dict[str, Any]:
    cm = cm.double()
    tp = cm.diag()
    gt = cm.sum(1)
    pred = cm.sum(0)
    union = gt + pred - tp
    iou = tp / union  # nan where a class is neither in the ground truth nor predicted
    acc = tp / gt
    total = cm.sum().clamp(min=1)
    freq = gt / total
    present = union > 0
    return {
        "mIoU": float(iou[present].mean()) if present.any() else 0.0,
        "aAcc": float(tp.sum() / total),
        "mAcc": float(acc[gt > 0].mean()) if (gt > 0).any() else 0.0,
        "fwIoU": float((freq[present] * iou[present]).sum()),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
    }


@EVALUATORS.register()
class SegEvaluator(Evaluator):
    """Args:
        dataset: gives ``num_classes``, ``classes`` and ``palette``.
        keep_predictions: keep the predicted maps even when not writing them (they are kept
            anyway when a test run writes its outputs).
        ignore_index: label value not counted.
    """

    def __init__(self, dataset, keep_predictions: bool = False, ignore_index: int = 255,
                 num_classes: Optional[int] = None):
        super().__init__(dataset)
        self.num_classes = int(num_classes or dataset.num_classes)
        self.classes = list(getattr(dataset, "classes", [str(i) for i in range(self.num_classes)]))
        self.palette = np.asarray(getattr(dataset, "palette", None) if getattr(dataset, "palette", None) is not None
                                  else np.zeros((self.num_classes, 3)), dtype=np.uint8)
        self.ignore_index = ignore_index
        self.keep_predictions = keep_predictions
        self.cm = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.predictions: List[tuple] = []
        self.last: Dict[str, Any] = {}

    def process(self, outputs: torch.Tensor, targets: torch.Tensor, metas: List[dict]) -> None:
        if outputs.shape[-2:] != targets.shape[-2:]:
            outputs = F.interpolate(outputs.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False)
        pred = outputs.argmax(1)
        cm = confusion_matrix(pred, targets, self.num_classes, self.ignore_index)
        self.cm += cm.cpu()
        if self.keep_predictions or self.writing:
            for logit, p, m in zip(outputs, pred, metas):
                # crop away collate padding, and return to the original image size when the
                # evaluation pipeline resized the image
                h, w = m.get("input_size", p.shape[-2:])
                ori = tuple(m.get("orig_size", (h, w)))
                if ori != (h, w):
                    p = F.interpolate(logit[None, :, :h, :w].float(), size=ori, mode="bilinear",
                                      align_corners=False)[0].argmax(0)
                else:
                    p = p[:h, :w]
                self.predictions.append((os.path.basename(m["path"]), p.to(torch.uint8).cpu().numpy()))

    def collect(self) -> None:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.is_dist() and torch.cuda.is_available() \
            else torch.device("cpu")
        self.cm_total = dist.all_reduce_sum(self.cm.clone().to(device)).cpu()
        if (self.keep_predictions or self.writing) and dist.is_dist():
            self.predictions = [p for part in dist.all_gather_object(self.predictions) for p in part]

    def compute_metrics(self) -> Dict[str, float]:
        self.last = metrics_from_confusion(self.cm_total)
        return {k: v for k, v in self.last.items() if k in ("mIoU", "aAcc", "mAcc", "fwIoU")}

    def report(self) -> str:
        if not self.last:
            return ""
        gt = self.cm_total.sum(1).tolist()
        w = max(8, max(len(c) for c in self.classes))
        lines = [f"{'class':<{w}}  {'IoU':>7}  {'Acc':>7}  {'pixels':>10}"]
        for name, iou, acc, n in zip(self.classes, self.last["IoU"], self.last["Acc"], gt):
            fmt = lambda v: "    nan" if v != v else f"{100 * v:7.2f}"  # noqa: E731
            lines.append(f"{name:<{w}}  {fmt(iou)}  {fmt(acc)}  {int(n):>10d}")
        lines.append(f"{'mean':<{w}}  {100 * self.last['mIoU']:7.2f}  {100 * self.last['mAcc']:7.2f}")
        return "\n".join(lines)

    def write(self, out_dir: str) -> None:
        """One palette PNG per image (``<image name>.png``): class indices with the dataset's colours."""
        os.makedirs(out_dir, exist_ok=True)
        flat = np.zeros(768, dtype=np.uint8)
        flat[: self.palette.size] = self.palette.reshape(-1)[:768]
        for name, pred in self.predictions:
            im = Image.fromarray(pred, mode="P")
            im.putpalette(flat.tolist())
            im.save(os.path.join(out_dir, os.path.splitext(name)[0] + ".png"))
        if self.last:
            with open(os.path.join(out_dir, "per_class_iou.txt"), "w") as f:
                f.write(self.report() + "\n")
