"""Heatmap pose estimation: single-person crops (CPM) and bottom-up multi-person images (OpenPose).

Batch: ``(images [B, 3, H, W], targets, metas)``; images of different sizes are zero-padded
bottom/right (``meta["input_size"]`` keeps each one's size), targets stay a list of dicts
(``keypoints`` (N, K, 3), and for bottom-up data ``ignore_mask`` (H, W) padded with 0). The model
builds its heatmap / part-affinity-field targets from them on its own output grid, so the stride,
Gaussian and limb width live in one place (the model's config).

Evaluation: OKS keypoint AP (``PoseCocoEvaluator``) for COCO-format data, PCK / PCKh
(``PCKEvaluator``) for crop annotations, unless ``evaluation.evaluator`` names one.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.image_io import read_image
from ..evaluation.pose import keypoints_to_image
from ..registry import EVALUATORS, TASKS, ConfigError
from ..visualization import to_display
from ..visualization_pose import draw_people
from .base import Task, move_to


@TASKS.register("pose")
class PoseTask(Task):
    default_evaluator = None  # chosen by the data: see build_evaluator

    # ---- data -----------------------------------------------------------------------------------
    def collate(self, items: List[Any]):
        images, targets, metas = zip(*items)
        H = max(i.shape[-2] for i in images)
        W = max(i.shape[-1] for i in images)
        batch = images[0].new_zeros(len(images), images[0].shape[0], H, W)
        out_targets = []
        for k, (im, t) in enumerate(zip(images, targets)):
            h, w = im.shape[-2:]
            batch[k, :, :h, :w] = im
            t = {"keypoints": t["keypoints"], **({"ignore_mask": t["ignore_mask"]} if "ignore_mask" in t else {})}
            out_targets.append(t)
        return batch, out_targets, list(metas)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        images, targets, metas = batch
        return images.to(device, non_blocking=True), move_to(targets, device), metas

    def check_compatible(self, model: nn.Module, dataset: Dataset, split: str) -> None:
        inner = getattr(model, "module", model)
        meta = getattr(dataset, "keypoint_meta", None)
        if meta is None:
            raise ConfigError(f"data.{split} has no keypoints: the pose task needs keypoint data (CocoPose, PoseCrops, "
                              f"or CocoDetection with with_keypoints: true)")
        k = getattr(inner, "num_keypoints", None)
        if k is not None and k != meta.num_keypoints:
            raise ConfigError(f"data.{split} has {meta.num_keypoints} keypoints ({', '.join(meta.names[:4])} ...) but "
                              f"the model predicts {k}: set model.num_keypoints: {meta.num_keypoints}")
        limbs = [tuple(l) for l in meta.skeleton]
        if getattr(inner, "needs_skeleton", False) and list(inner.skeleton) != limbs:
            raise ConfigError(f"the model's part affinity fields follow another skeleton than data.{split}'s: set "
                              f"model.skeleton: {[list(l) for l in limbs]}")
        if getattr(inner, "flip_test", False) and sorted(map(sorted, inner.flip_pairs)) != sorted(map(sorted, meta.flip_pairs)):
            raise ConfigError(f"model.flip_pairs differ from data.{split}'s left/right pairs: set model.flip_pairs: "
                              f"{[list(p) for p in meta.flip_pairs]}")

    # ---- evaluation -----------------------------------------------------------------------------
    def build_evaluator(self, dataset: Dataset, split: str):
        ev_cfg = dict(self.eval_cfg.get("evaluator") or {})
        if "type" not in ev_cfg:
            ev_cfg["type"] = "PoseCocoEvaluator" if hasattr(dataset, "coco") else "PCKEvaluator"
        return EVALUATORS.build(ev_cfg, key="evaluation.evaluator", dataset=dataset)

    # ---- pictures -------------------------------------------------------------------------------
    def dummy_target(self, x: torch.Tensor) -> Any:
        return {"keypoints": torch.zeros(0, 1, 3)}

    @torch.no_grad()
    def predict_image(self, model: nn.Module, path: str, dataset: Optional[Dataset], device: torch.device):
        """Crop models (a PoseCrops dataset) see the whole image as the person's crop (resized to the
        crop size); the others the image through the evaluation transforms."""
        size = getattr(dataset, "input_size", None)
        if size is None or not hasattr(dataset, "ground_truth"):
            return super().predict_image(model, path, dataset, device)
        from ..data.datasets.pose_crops import crop_affine
        import cv2
        image = read_image(path)
        h, w = image.shape[-2:]
        affine = crop_affine((w / 2, h / 2), max(h, w), 0.0, size)
        m = np.array(affine)
        m[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5  # continuous -> pixel-index coordinates for warpAffine
        crop = cv2.warpAffine(image.permute(1, 2, 0).numpy(), m, (size[1], size[0]), flags=cv2.INTER_LINEAR)
        x = self.prepare_image(torch.from_numpy(crop).permute(2, 0, 1).contiguous(), dataset)
        meta = {"index": 0, "path": path, "orig_size": (h, w), "input_size": tuple(x.shape[-2:]),
                "crop_affine": affine.tolist()}
        inputs, _, metas = self.collate([(x, self.dummy_target(x), meta)])
        model.eval()
        out = self.predict(model, move_to(inputs, device))
        return {"image": image, "output": self.first_output(out), "meta": metas[0]}

    def _skeleton(self, dataset):
        meta = getattr(dataset, "keypoint_meta", None)
        return meta.skeleton if meta is not None else None

    def draw_prediction(self, image: torch.Tensor, output: Any, meta: Dict[str, Any], dataset,
                        score_thr: float = 0.2) -> np.ndarray:
        keypoints = keypoints_to_image(output["keypoints"], meta)
        return draw_people(to_display(image), keypoints, self._skeleton(dataset), output.get("scores"), score_thr)

    def draw_sample(self, image: torch.Tensor, target: Any, dataset) -> np.ndarray:
        img = self.display_image(image, dataset)
        ignore = target.get("ignore_mask")
        if ignore is not None and ignore.any():  # ignored regions darkened
            m = ignore.bool().numpy()[: img.shape[0], : img.shape[1]]
            img = img.copy()
            img[m] = (img[m] * 0.35).astype(np.uint8)
        return draw_people(img, target["keypoints"], self._skeleton(dataset))
