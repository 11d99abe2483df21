"""Pose evaluation: PCK / PCKh for single-person crops, OKS keypoint AP (pycocotools) for
multi-person images, and pictures of skeletons, heatmaps and part affinity fields in ``plots/``.

PCK@alpha: a labelled joint is correct when the prediction is within ``alpha`` x the person's size,
where the size is the longer side of the person's box (``normalize: bbox``), the torso diameter
(``torso``: left shoulder to right hip, LSP's convention) or the head size (``head``). PCKh@0.5 is
the MPII convention: size = 0.6 x the diagonal of the head box, alpha = 0.5. Reported per joint
(``PCK/<joint>``) and over all labelled joints (``PCK``, ``PCKh``; joints counted equally, which is
the count-weighted mean of the per-joint values). Predictions are compared in the image's own
coordinates (crop predictions mapped back through ``meta["crop_affine"]``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..registry import EVALUATORS, ConfigError
from ..utils.errors import DataError
from .base import Evaluator
from .coco import CocoEvaluator

NORMALIZATIONS = ("bbox", "torso", "head")


def keypoints_to_image(keypoints: Any, meta: Dict[str, Any]) -> np.ndarray:
    """(..., K, >=2) model-input coordinates -> the image file's, through the crop's affine map when
    the sample is a crop, else by the resize between ``orig_size`` and ``input_size``."""
    kp = np.array(keypoints.detach().float().cpu() if torch.is_tensor(keypoints) else keypoints, np.float64)
    if kp.size == 0:
        return kp
    if meta.get("crop_affine") is not None:
        import cv2
        inv = cv2.invertAffineTransform(np.asarray(meta["crop_affine"], np.float64))
        xy = kp[..., :2] @ inv[:, :2].T + inv[:, 2]
        kp[..., 0], kp[..., 1] = xy[..., 0], xy[..., 1]
        return kp
    (oh, ow), (ih, iw) = meta["orig_size"], meta.get("input_size", meta["orig_size"])
    kp[..., 0] *= ow / iw
    kp[..., 1] *= oh / ih
    return kp


def _find(names: Sequence[str], *candidates: str) -> Optional[int]:
    for c in candidates:
        if c in names:
            return names.index(c)
    return None


@EVALUATORS.register()
class PCKEvaluator(Evaluator):
    """Args:
        alpha: PCK threshold as a fraction of the person's size.
        normalize: ``bbox`` | ``torso`` | ``head`` (see above).
        torso_joints: [a, b] joint indices of the torso diameter (default: left shoulder, right hip by name).
        head_factor: head size = head_factor x head-box diagonal (MPII: 0.6).
        pckh_alpha: also report PCKh at this threshold when the data has head boxes (null: never).
        num_pictures: predictions drawn in ``plots/`` after each validation.
    """

    def __init__(self, dataset, alpha: float = 0.2, normalize: str = "bbox", torso_joints: Optional[Sequence[int]] = None,
                 head_factor: float = 0.6, pckh_alpha: Optional[float] = 0.5, num_pictures: int = 8):
        if not hasattr(dataset, "ground_truth"):
            raise ConfigError(f"PCKEvaluator needs single-person annotations (a PoseCrops dataset); "
                              f"{type(dataset).__name__} has none -- use PoseCocoEvaluator for COCO files")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"PCKEvaluator.normalize: '{normalize}' must be one of {', '.join(NORMALIZATIONS)}")
        if not alpha > 0:
            raise ConfigError(f"PCKEvaluator.alpha={alpha}: must be > 0")
        super().__init__(dataset)
        meta = dataset.keypoint_meta
        self.names = list(meta.names)
        self.skeleton = meta.skeleton
        self.alpha, self.normalize, self.head_factor, self.pckh_alpha = float(alpha), normalize, head_factor, pckh_alpha
        if torso_joints is None and normalize == "torso":
            a = _find(self.names, "left_shoulder", "l_shoulder")
            b = _find(self.names, "right_hip", "r_hip")
            if a is None or b is None:
                raise ConfigError("PCKEvaluator: normalize=torso needs torso_joints [a, b] (no left_shoulder / right_hip "
                                  "names in the data)")
            torso_joints = (a, b)
        self.torso_joints = tuple(torso_joints) if torso_joints is not None else None
        self.num_pictures = num_pictures
        self.pictures: List[Dict[str, Any]] = []

    def _size(self, gt: Dict[str, Any], kind: str) -> Optional[float]:
        if kind == "head":
            hb = gt.get("head_box")
            return None if hb is None else self.head_factor * float(np.hypot(hb[2] - hb[0], hb[3] - hb[1]))
        if kind == "torso":
            j = gt["joints"]
            a, b = self.torso_joints
            if j[a, 2] <= 0 or j[b, 2] <= 0:
                return None
            return float(np.hypot(*(j[a, :2] - j[b, :2])))
        box = gt.get("bbox")
        return None if box is None else float(max(box[2], box[3]))

    def process(self, outputs: List[Dict[str, torch.Tensor]], targets: Any, metas: List[dict]) -> None:
        for out, meta in zip(outputs, metas):
            gt = self.dataset.ground_truth(int(meta["index"]))
            pred = keypoints_to_image(out["keypoints"][0], meta)
            if pred.shape[0] != len(gt["joints"]):
                raise ConfigError(f"the model predicts {pred.shape[0]} keypoints but the data has {len(gt['joints'])}: "
                                  f"set model.num_keypoints: {len(gt['joints'])}")
            dist = np.hypot(*(pred[:, :2] - gt["joints"][:, :2]).T)
            rec = {"index": int(meta["index"]), "path": meta["path"], "dist": dist.tolist(),
                   "labelled": (gt["joints"][:, 2] > 0).tolist(), "size": self._size(gt, self.normalize),
                   "head": self._size(gt, "head"), "keypoints": np.round(pred[:, :2], 2).tolist(),
                   "scores": out["keypoints_scores"][0].float().cpu().tolist() if "keypoints_scores" in out else None}
            self.results.append(rec)
            if len(self.pictures) < self.num_pictures:
                self.pictures.append({"path": meta["path"], "pred": pred, "gt": gt["joints"],
                                      "heatmaps": out.get("heatmaps"), "stride": out.get("stride"), "meta": meta})

    def _pck(self, size_key: str, alpha: float):
        """(correct, labelled) per joint over the samples with a size."""
        k = len(self.names)
        correct, total = np.zeros(k), np.zeros(k)
        for r in self.results:
            size = r[size_key]
            if size is None or size <= 0:
                continue
            lab = np.asarray(r["labelled"], bool)
            ok = np.asarray(r["dist"]) <= alpha * size
            correct += ok & lab
            total += lab
        return correct, total

    def compute_metrics(self) -> Dict[str, float]:
        metrics: Dict[str, float] = {}
        for name, key, alpha in (("PCK", "size", self.alpha), ("PCKh", "head", self.pckh_alpha)):
            if alpha is None:
                continue
            correct, total = self._pck(key, alpha)
            if total.sum() == 0:
                if name == "PCK" and self.results:
                    raise DataError(f"PCKEvaluator: no sample has a {self.normalize} size (normalize={self.normalize}); "
                                    f"the annotations need a bbox / labelled torso joints / head_box")
                continue
            metrics[name] = float(correct.sum() / total.sum())
            for j, n in enumerate(self.names):
                if total[j]:
                    metrics[f"{name}/{n}"] = float(correct[j] / total[j])
        return metrics

    def report(self) -> str:
        m = self.compute_metrics() if self.results else {}
        cols = [c for c in ("PCK", "PCKh") if c in m]
        if not cols:
            return ""
        lines = [f"{'joint':<16}" + "".join(f"{c + ('@%g' % (self.alpha if c == 'PCK' else self.pckh_alpha)):>12}"
                                             for c in cols)]
        for n in self.names:
            lines.append(f"{n:<16}" + "".join(f"{m.get(f'{c}/{n}', float('nan')):12.3f}" for c in cols))
        lines.append(f"{'mean':<16}" + "".join(f"{m[c]:12.3f}" for c in cols))
        return "\n".join(lines)

    def write(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "results_pck.json"), "w") as f:
            json.dump([{"index": r["index"], "image": r["path"], "keypoints": r["keypoints"], "scores": r["scores"]}
                       for r in self.results], f)
        with open(os.path.join(out_dir, "pck_per_joint.txt"), "w") as f:
            f.write(self.report() + "\n")
        self.visualize(out_dir)

    def visualize(self, out_dir: str) -> None:
        from ..data.image_io import read_image
        from ..visualization import save_rgb, to_display
        from ..visualization_pose import draw_people, heatmap_colour, montage, overlay
        import cv2
        skel, preds, maps = self.skeleton, [], []
        for p in self.pictures:
            img = to_display(read_image(p["path"]))
            x0, y0, x1, y1 = _region(np.concatenate([p["gt"][p["gt"][:, 2] > 0, :2], p["pred"][:, :2]]), img.shape)
            both = draw_people(img, np.stack([np.concatenate([p["gt"][:, :2], (p["gt"][:, 2:] > 0)], 1),
                                              np.concatenate([p["pred"][:, :2], np.ones((len(p["pred"]), 1))], 1)]),
                               skel)
            preds.append(both[y0:y1, x0:x1])
            if p["heatmaps"] is not None:
                crop = img
                if p["meta"].get("crop_affine") is not None:  # the crop the model saw (warpAffine: pixel indices)
                    m = np.array(p["meta"]["crop_affine"], np.float64)
                    m[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5
                    crop = cv2.warpAffine(img, m, tuple(p["meta"]["input_size"][::-1]))
                ih, iw = p["meta"]["input_size"]
                maps.append(overlay(crop, heatmap_colour(p["heatmaps"]), region=_map_region(p["stride"], ih, iw)))
        if preds:
            save_rgb(os.path.join(out_dir, "pose_predictions.png"), montage(preds))  # ground truth: 1st colour
        if maps:
            save_rgb(os.path.join(out_dir, "pose_heatmaps.png"), montage(maps))


def _map_region(stride: Optional[int], h: int, w: int) -> Optional[tuple]:
    """The cells of a model's output grid (stride ``stride``) that cover an h x w input; the rest
    covers the padding up to a multiple of the stride."""
    return None if not stride else (int(np.ceil(h / stride)), int(np.ceil(w / stride)))


def _region(points: np.ndarray, shape) -> tuple:
    """A box around ``points`` with a margin, inside the image."""
    h, w = shape[:2]
    if len(points) == 0:
        return 0, 0, w, h
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    m = 0.25 * max(x1 - x0, y1 - y0, 16)
    return (int(max(0, x0 - m)), int(max(0, y0 - m)), int(min(w, x1 + m + 1)), int(min(h, y1 + m + 1)))


@EVALUATORS.register()
class PoseCocoEvaluator(CocoEvaluator):
    """OKS keypoint AP (``CocoEvaluator`` with ``iou_types: [keypoints]`` by default) for bottom-up
    models, with pictures: the people found, the predicted heatmaps and part affinity fields of the
    first ``num_pictures`` validation images (``plots/pose_*.png``, and the test folder)."""

    def __init__(self, dataset, iou_types: Optional[Sequence[str]] = ("keypoints",), num_pictures: int = 4,
                 score_thr: float = 0.2, **kwargs):
        super().__init__(dataset, iou_types=iou_types, **kwargs)
        self.num_pictures, self.score_thr = num_pictures, score_thr
        meta = getattr(dataset, "keypoint_meta", None)
        self.skeleton = meta.skeleton if meta is not None else None
        self.pictures: List[Dict[str, Any]] = []

    def process(self, outputs, targets, metas) -> None:
        super().process(outputs, targets, metas)
        for out, meta in zip(outputs, metas):
            if len(self.pictures) >= self.num_pictures:
                break
            self.pictures.append({"meta": meta, "keypoints": keypoints_to_image(out["keypoints"], meta),
                                  "scores": out["scores"].float().cpu(), "heatmaps": out.get("heatmaps"),
                                  "pafs": out.get("pafs"), "stride": out.get("stride")})

    def write(self, out_dir: str):
        paths = super().write(out_dir)
        self.visualize(out_dir)
        return paths

    def visualize(self, out_dir: str) -> None:
        from ..data.image_io import read_image
        from ..visualization import save_rgb, to_display
        from ..visualization_pose import draw_people, heatmap_colour, montage, overlay, paf_colour
        people, heat, paf = [], [], []
        for p in self.pictures:
            img = to_display(read_image(p["meta"]["path"]))
            people.append(draw_people(img, p["keypoints"], self.skeleton, p["scores"], self.score_thr))
            # the maps cover the (padded) model input; the image is its top-left input_size part
            ih, iw = p["meta"].get("input_size", img.shape[:2])
            for maps, colour, out, field in ((p["heatmaps"], heatmap_colour, heat, False),
                                             (p["pafs"], paf_colour, paf, True)):
                if maps is not None:
                    out.append(overlay(img, colour(maps), alpha=0.9 if field else 0.6,
                                       region=_map_region(p["stride"], ih, iw), by_brightness=field))
        for name, pics in (("pose_people", people), ("pose_heatmaps", heat), ("pose_pafs", paf)):
            if pics:
                save_rgb(os.path.join(out_dir, f"{name}.png"), montage(pics))
