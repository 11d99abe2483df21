"""The task runner interface. The trainer owns the loop; a Task owns everything task-specific:
building the model and datasets, collating and moving batches, the training step's call, and
evaluation / test outputs.

Contracts every task follows:
- a dataset item is ``(image, target, meta)``; ``meta`` is a small dict (``index``, ``path`` ...);
- a batch is ``(inputs, targets, metas)`` after ``collate``;
- in train mode ``model(inputs, targets)`` returns a dict of named loss tensors (DESIGN principle 1);
  in eval mode ``model(inputs)`` returns predictions that the task's evaluator understands.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ..data.samplers import ShardSampler, TrainSampler
from ..engine import dist
from ..registry import DATASETS, EVALUATORS, MODELS, ConfigError


def move_to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj


class Task:
    # default evaluator ``type`` when the config's ``evaluation`` section names none
    default_evaluator: Optional[str] = None

    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = cfg

    # ---- building -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return MODELS.build(self.cfg["model"], key="model")

    def build_dataset(self, split: str) -> Dataset:
        data = self.cfg.get("data") or {}
        if not data.get(split):
            raise ConfigError(f"data.{split} is not set in the config: add a dataset section for the {split} split")
        return DATASETS.build(data[split], key=f"data.{split}")

    def check_compatible(self, model: nn.Module, dataset: Dataset, split: str) -> None:
        """Raise a clear error when the model and the data disagree (e.g. number of classes)."""

    def collate(self, items: List[Any]) -> Any:
        images, targets, metas = zip(*items)
        return default_collate(list(images)), default_collate(list(targets)), list(metas)

    def build_loader(self, dataset: Dataset, train: bool, batch_size: int, num_workers: int = 0,
                     seed: int = 0, pin_memory: bool = False, persistent_workers: bool = False) -> DataLoader:
        """Training loaders must be resumable: their sampler (or batch sampler) has
        ``set_epoch(epoch)`` and ``set_start(n)`` (samples, or batches for a batch sampler, of this
        rank's share already consumed in that epoch); the trainer calls both before each epoch."""
        sampler = TrainSampler(len(dataset), shuffle=True, seed=seed) if train else ShardSampler(len(dataset))
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                          collate_fn=self.collate, drop_last=train, pin_memory=pin_memory,
                          persistent_workers=persistent_workers and num_workers > 0,
                          generator=torch.Generator().manual_seed(seed))

    def to_device(self, batch: Any, device: torch.device) -> Any:
        inputs, targets, metas = batch
        return move_to(inputs, device), move_to(targets, device), metas

    def batch_size(self, batch: Any) -> int:
        return len(batch[2])

    # ---- training -------------------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: Any) -> Dict[str, torch.Tensor]:
        inputs, targets, _ = batch
        return model(inputs, targets)

    # ---- evaluation -----------------------------------------------------------------------------
    def build_evaluator(self, dataset: Dataset, split: str):
        # the same evaluator options serve validation during training and test runs
        ev_cfg = dict((self.cfg.get("test") or {}).get("evaluator") or {})
        ev_cfg.setdefault("type", self.default_evaluator)
        if ev_cfg["type"] is None:
            raise ConfigError(f"task {type(self).__name__} has no evaluator; set test.evaluator.type")
        return EVALUATORS.build(ev_cfg, key="test.evaluator", dataset=dataset)

    def predict(self, model: nn.Module, inputs: Any) -> Any:
        return model(inputs)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, device: torch.device, split: str = "val",
                 out_dir: Optional[str] = None, autocast: Any = None, progress=None,
                 vis_dir: Optional[str] = None) -> Dict[str, float]:
        """Run the model over ``loader`` on every rank; the evaluator reduces across ranks.

        ``out_dir`` (test mode) asks the evaluator to write its predictions / pictures there;
        ``vis_dir`` (during training) to refresh its summary pictures (e.g. a confusion matrix).
        """
        evaluator = self.build_evaluator(loader.dataset, split)
        model.eval()
        ctx = autocast or contextlib.nullcontext
        for i, batch in enumerate(loader):
            batch = self.to_device(batch, device)
            inputs, targets, metas = batch
            with ctx():
                outputs = self.predict(model, inputs)
            evaluator.process(outputs, targets, metas)
            if progress is not None:
                progress(i + 1, len(loader))
        metrics = evaluator.compute()
        if dist.is_main() and hasattr(evaluator, "report"):
            text = evaluator.report()
            if text:
                logging.getLogger("torchcv").info(text)
        if out_dir is not None and dist.is_main():
            evaluator.write(out_dir)
        if vis_dir is not None and dist.is_main() and hasattr(evaluator, "visualize"):
            evaluator.visualize(vis_dir)
        return metrics
