"""Object detection and instance segmentation (same task; masks when the model predicts them).

Batch: ``(list of images, list of target dicts, list of metas)``; images keep their own sizes and
the model pads them. Training batches come from an aspect-ratio grouped batch sampler
(``data.sampler.aspect_ratio_group_factor``, default 3; -1 = no grouping).
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import Key
from ..data.group_sampler import GroupedBatchSampler, aspect_ratio_bins
from ..registry import TASKS, ConfigError
from ..visualization import draw_instances, to_display
from .base import Task, move_to


@TASKS.register("detection")
class DetectionTask(Task):
    default_evaluator = "CocoEvaluator"

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        s = super().schema()
        s["data"]["sampler"] = {"aspect_ratio_group_factor": Key(int, 3, min=-1, doc="bins per side; -1: no grouping")}
        return s

    def collate(self, items: List[Any]):
        images, targets, metas = zip(*items)
        return list(images), list(targets), list(metas)

    def check_compatible(self, model, dataset: Dataset, split: str) -> None:
        n_model = getattr(model, "num_classes", None)
        n_data = getattr(dataset, "num_classes", None)
        if n_model is not None and n_data is not None and n_data > n_model:
            raise ConfigError(f"data.{split} has {n_data} classes (with background) but model.num_classes is "
                              f"{n_model}: set model.num_classes: {n_data}")
        k_model = getattr(model, "num_keypoints", None)
        meta = getattr(dataset, "keypoint_meta", None) if getattr(dataset, "with_keypoints", False) else None
        if k_model is not None and meta is None and split == "train":
            raise ConfigError(f"the model predicts keypoints but data.{split} has none: set with_keypoints: true on "
                              f"the dataset (a COCO person-keypoint file)")
        if k_model is not None and meta is not None and k_model != meta.num_keypoints:
            raise ConfigError(f"data.{split} has {meta.num_keypoints} keypoints per instance "
                              f"({', '.join(meta.names[:4])} ...) but the model predicts {k_model}: set "
                              f"model.num_keypoints: {meta.num_keypoints}")

    def train_batch_sampler(self, dataset: Dataset, batch_size: int, seed: int):
        factor = self.data_cfg["sampler"]["aspect_ratio_group_factor"]
        ratios = dataset.aspect_ratios() if hasattr(dataset, "aspect_ratios") else [1.0] * len(dataset)
        return GroupedBatchSampler(aspect_ratio_bins(ratios, factor), batch_size, seed=seed)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        images, targets, metas = batch
        return [im.to(device, non_blocking=True) for im in images], move_to(targets, device), metas

    def batch_size(self, batch: Any) -> int:
        return len(batch[0])

    # ---- pictures -------------------------------------------------------------------------------
    def dummy_target(self, x: torch.Tensor) -> Any:
        return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}

    def draw_prediction(self, image: torch.Tensor, output: Any, meta: Dict[str, Any], dataset,
                        score_thr: float = 0.5) -> np.ndarray:
        boxes, masks = output["boxes"].detach().float().cpu(), output.get("masks")
        (oh, ow), (ih, iw) = meta["orig_size"], meta["input_size"]
        if (oh, ow) != (ih, iw):  # the evaluation transforms resized the image: back to the file's pixels
            boxes = boxes * torch.tensor([ow / iw, oh / ih, ow / iw, oh / ih])
            if masks is not None and len(masks):
                masks = F.interpolate(masks.detach().float().cpu(), size=(oh, ow), mode="bilinear",
                                      align_corners=False)
        keypoints = output.get("keypoints")
        if keypoints is not None and (oh, ow) != (ih, iw):
            keypoints = keypoints.detach().float().cpu().clone()
            keypoints[..., 0] *= ow / iw
            keypoints[..., 1] *= oh / ih
        return draw_instances(to_display(image), boxes, output["labels"], self.class_names(dataset),
                              scores=output["scores"], masks=masks, score_thr=score_thr, keypoints=keypoints,
                              skeleton=self._skeleton(dataset))

    def _skeleton(self, dataset):
        meta = getattr(dataset, "keypoint_meta", None)
        return meta.skeleton if meta is not None else None

    def draw_sample(self, image: torch.Tensor, target: Any, dataset) -> np.ndarray:
        return draw_instances(self.display_image(image, dataset), target["boxes"], target["labels"],
                              self.class_names(dataset), masks=target.get("masks"), keypoints=target.get("keypoints"),
                              skeleton=self._skeleton(dataset))
