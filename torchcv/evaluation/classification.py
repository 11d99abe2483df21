"""Top-k accuracy, per-class accuracy and the confusion matrix; per-image predictions in test mode."""
from __future__ import annotations

import csv
import os
from typing import Dict, List, Sequence

import torch

from ..registry import EVALUATORS, ConfigError
from .base import Evaluator


@EVALUATORS.register()
class ClassificationEvaluator(Evaluator):
    """Args:
        topk: the top-k accuracies to report (k larger than the number of classes is dropped).
    """

    def __init__(self, dataset, topk: Sequence[int] = (1, 5)):
        super().__init__(dataset)
        if not topk or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in topk):
            raise ConfigError(f"evaluation.evaluator.topk={list(topk) if topk else topk}: give positive integers, "
                              f"e.g. [1, 5]")
        self.classes: List[str] = list(getattr(dataset, "classes", []))
        self.num_classes = len(self.classes)
        self.topk = [k for k in topk if k <= max(1, self.num_classes)] or [1]
        # results: (index, path, label, [top-k preds], [top-k probs])

    def process(self, logits: torch.Tensor, targets: torch.Tensor, metas) -> None:
        probs = logits.float().softmax(dim=1)
        k = min(max(self.topk + [5]), probs.shape[1])
        top_p, top_i = probs.topk(k, dim=1)
        for m, t, ti, tp in zip(metas, targets.tolist(), top_i.tolist(), top_p.tolist()):
            self.results.append((m["index"], m.get("path", ""), int(t), ti, tp))

    def compute_metrics(self) -> Dict[str, float]:
        rows = sorted({r[0]: r for r in self.results}.values())  # unique by dataset index
        self.results = rows
        n = max(1, len(rows))
        metrics: Dict[str, float] = {}
        for k in self.topk:
            metrics[f"top{k}"] = sum(r[2] in r[3][:k] for r in rows) / n
        c = self.num_classes or (max(max(r[2], r[3][0]) for r in rows) + 1 if rows else 1)
        cm = torch.zeros(c, c, dtype=torch.int64)
        for r in rows:
            cm[r[2], r[3][0]] += 1
        self.confusion = cm
        per_class = cm.diag().float() / cm.sum(1).clamp(min=1).float()
        metrics["mean_class_acc"] = float(per_class[cm.sum(1) > 0].mean()) if rows else 0.0
        for i, acc in enumerate(per_class.tolist()):
            metrics[f"class_acc/{self._name(i)}"] = acc
        return metrics

    def _name(self, i: int) -> str:
        return self.classes[i] if i < len(self.classes) else str(i)

    def report(self) -> str:
        cm = self.confusion
        lines = ["per-class accuracy:", f"  {'class':<20} {'acc':>7} {'images':>7}"]
        for i in range(cm.shape[0]):
            total = int(cm[i].sum())
            lines.append(f"  {self._name(i):<20} {(cm[i, i] / max(1, total)).item():7.4f} {total:7d}")
        return "\n".join(lines)

    def write(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "predictions.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", "path", "label", "pred", "score", "top5_classes", "top5_scores"])
            for idx, p, label, ti, tp in self.results:
                w.writerow([idx, p, self._name(label), self._name(ti[0]), f"{tp[0]:.5f}",
                            " ".join(self._name(i) for i in ti), " ".join(f"{s:.4f}" for s in tp)])
        self.visualize(out_dir)

    def visualize(self, out_dir: str) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        os.makedirs(out_dir, exist_ok=True)
        cm = self.confusion.float()
        norm = cm / cm.sum(1, keepdim=True).clamp(min=1)
        c = cm.shape[0]
        fig, ax = plt.subplots(figsize=(2 + 0.5 * c, 1.5 + 0.5 * c))
        ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
        names = [self._name(i) for i in range(c)]
        ax.set_xticks(range(c), names, rotation=45, ha="right"), ax.set_yticks(range(c), names)
        if c <= 30:
            for i in range(c):
                for j in range(c):
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title("confusion matrix")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "confusion_matrix.png"), dpi=90)
        plt.close(fig)
