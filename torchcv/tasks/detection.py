"""Object detection and instance segmentation (same task; masks when the model predicts them).

Batch: ``(list of images, list of target dicts, list of metas)``; images keep their own sizes and
the model pads them. Training batches come from an aspect-ratio grouped batch sampler
(``data.sampler.aspect_ratio_group_factor``, default 3; -1 = no grouping).
"""
from __future__ import annotations

from typing import Any, List

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.group_sampler import GroupedBatchSampler, aspect_ratio_bins
from ..data.samplers import ShardSampler
from ..registry import TASKS, ConfigError
from .base import Task, move_to


@TASKS.register("detection")
class DetectionTask(Task):
    default_evaluator = "CocoEvaluator"

    def collate(self, items: List[Any]):
        images, targets, metas = zip(*items)
        return list(images), list(targets), list(metas)

    def check_compatible(self, model, dataset: Dataset, split: str) -> None:
        n_model = getattr(model, "num_classes", None)
        n_data = getattr(dataset, "num_classes", None)
        if n_model is not None and n_data is not None and n_data > n_model:
            raise ConfigError(f"data.{split} has {n_data} classes (with background) but model.num_classes is "
                              f"{n_model}: set model.num_classes: {n_data}")

    def build_loader(self, dataset: Dataset, train: bool, batch_size: int, num_workers: int = 0, seed: int = 0,
                     pin_memory: bool = False, persistent_workers: bool = False) -> DataLoader:
        common = dict(num_workers=num_workers, collate_fn=self.collate, pin_memory=pin_memory,
                      persistent_workers=persistent_workers and num_workers > 0)
        if not train:
            return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset)), **common)
        opts = dict((self.cfg.get("data") or {}).get("sampler") or {})
        factor = opts.pop("aspect_ratio_group_factor", 3)
        if opts:
            raise ConfigError(f"data.sampler: unknown option(s) {sorted(opts)} for detection; "
                              f"accepted: aspect_ratio_group_factor")
        ratios = dataset.aspect_ratios() if hasattr(dataset, "aspect_ratios") else [1.0] * len(dataset)
        sampler = GroupedBatchSampler(aspect_ratio_bins(ratios, factor), batch_size, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, generator=torch.Generator().manual_seed(seed), **common)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        images, targets, metas = batch
        return [im.to(device, non_blocking=True) for im in images], move_to(targets, device), metas

    def batch_size(self, batch: Any) -> int:
        return len(batch[0])
