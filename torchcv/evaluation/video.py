"""Clip-level and video-level accuracy of a video classifier.

Each evaluation item is one clip. Clip metrics score every clip on its own (what the seed's
torchvision table reports: "clip accuracy"); video metrics average the softmax of a video's clips
first (what torchvision's current weight metadata reports). Names say which:

    clip_top1, clip_top5, clip_mean_class_acc
    video_top1, video_top5, video_mean_class_acc, video_class_acc/<class>

The confusion matrix and the per-class table are video-level. In test mode ``write`` puts
``predictions.csv`` (one row per video: label, prediction, score, clips, top-5) and
``clip_predictions.csv`` (one row per clip) in the output folder, with the confusion matrix.
"""
from __future__ import annotations

import csv
import os
from typing import Dict

import numpy as np
import torch

from ..registry import EVALUATORS
from .base import Evaluator
from .classification import ClassificationEvaluator


@EVALUATORS.register()
class VideoClassificationEvaluator(ClassificationEvaluator):
    """Args:
        topk: the top-k accuracies to report (k larger than the number of classes is dropped).
    """
    # results: one record per clip: (index, video, path, label, softmax as float32 numpy)

    def process(self, logits: torch.Tensor, targets: torch.Tensor, metas) -> None:
        probs = logits.float().softmax(dim=1).cpu().numpy()
        for m, t, p in zip(metas, targets.tolist(), probs):
            self.results.append((m["index"], m.get("video", m["index"]), m.get("path", ""), int(t), p))

    def compute_metrics(self) -> Dict[str, float]:
        clips = sorted({r[0]: r for r in self.results}.values(), key=lambda r: r[0])  # unique by dataset index
        self.results = clips
        c = self.num_classes or (max(r[3] for r in clips) + 1 if clips else 1)
        k_max = min(max(self.topk + [5]), c)
        # clip level
        clip_probs = np.stack([r[4] for r in clips]) if clips else np.zeros((0, c), np.float32)
        clip_labels = np.array([r[3] for r in clips], dtype=np.int64)
        clip_top = np.argsort(-clip_probs, axis=1, kind="stable")[:, :k_max]
        # video level: softmax averaged over the video's clips
        videos: Dict[int, list] = {}
        for idx, v, path, label, p in clips:
            rec = videos.setdefault(v, [path, label, np.zeros(c, np.float64), 0, []])
            rec[2] += p
            rec[3] += 1
            rec[4].append(idx)
        self.videos = {v: (path, label, (s / n).astype(np.float32), n) for v, (path, label, s, n, _) in sorted(videos.items())}
        video_probs = np.stack([r[2] for r in self.videos.values()]) if videos else np.zeros((0, c), np.float32)
        video_labels = np.array([r[1] for r in self.videos.values()], dtype=np.int64)
        video_top = np.argsort(-video_probs, axis=1, kind="stable")[:, :k_max]
        self.clip_top, self.video_top = clip_top, video_top

        metrics: Dict[str, float] = {}
        for level, top, labels in (("clip", clip_top, clip_labels), ("video", video_top, video_labels)):
            n = max(1, len(labels))
            for k in self.topk:
                metrics[f"{level}_top{k}"] = float((top[:, :k] == labels[:, None]).any(1).sum() / n)
            cm = torch.zeros(c, c, dtype=torch.int64)
            for t, p in zip(labels.tolist(), top[:, 0].tolist()):
                cm[t, p] += 1
            per_class = cm.diag().float() / cm.sum(1).clamp(min=1).float()
            metrics[f"{level}_mean_class_acc"] = float(per_class[cm.sum(1) > 0].mean()) if len(labels) else 0.0
            if level == "video":
                self.confusion = cm
                for i, acc in enumerate(per_class.tolist()):
                    metrics[f"video_class_acc/{self._name(i)}"] = acc
            else:
                self.clip_confusion = cm
        return metrics

    def report(self) -> str:
        cm, ccm = self.confusion, self.clip_confusion
        lines = [f"per-class accuracy over {len(self.videos)} videos, {len(self.results)} clips "
                 f"(video: clips averaged; clip: each clip alone):",
                 f"  {'class':<20} {'video':>7} {'clip':>7} {'videos':>7} {'clips':>7}"]
        for i in range(cm.shape[0]):
            nv, nc = int(cm[i].sum()), int(ccm[i].sum())
            lines.append(f"  {self._name(i):<20} {(cm[i, i] / max(1, nv)).item():7.4f} "
                         f"{(ccm[i, i] / max(1, nc)).item():7.4f} {nv:7d} {nc:7d}")
        return "\n".join(lines)

    def write(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "predictions.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["video", "path", "label", "pred", "score", "clips", "top5_classes", "top5_scores"])
            for (v, (path, label, probs, n)), top in zip(self.videos.items(), self.video_top):
                w.writerow([v, path, self._name(label), self._name(int(top[0])), f"{probs[top[0]]:.5f}", n,
                            " ".join(self._name(int(i)) for i in top), " ".join(f"{probs[i]:.4f}" for i in top)])
        with open(os.path.join(out_dir, "clip_predictions.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", "video", "path", "label", "pred", "score"])
            for (idx, v, path, label, probs), top in zip(self.results, self.clip_top):
                w.writerow([idx, v, path, self._name(label), self._name(int(top[0])), f"{probs[top[0]]:.5f}"])
        self.visualize(out_dir)
