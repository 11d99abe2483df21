"""The task runner interface. The trainer owns the loop; a Task owns everything task-specific:
the ``model``, ``data`` and ``evaluation`` config sections (declared in ``schema()``), building the
model, datasets and loaders, collating and moving batches, one training iteration
(``train_step``), evaluation and test outputs, and pictures of samples and predictions.

Contracts every task follows:
- a dataset item is ``(image, target, meta)``; ``meta`` is a small dict (``index``, ``path``,
  ``orig_size`` = (H, W) of the file, ``input_size`` = (H, W) after the transforms ...);
- a batch is ``(inputs, targets, metas)`` after ``collate``;
- in train mode ``model(inputs, targets)`` returns a dict of named loss tensors; in eval mode
  ``model(inputs)`` returns predictions that the task's evaluator understands;
- ``train_step(model, batch, optims)`` runs one iteration through the named optimizers and returns
  the losses by name (the default: sum them, one backward, step every optimizer);
- ``state_dict()`` holds whatever the task keeps between iterations (saved in every checkpoint).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import tv_tensors

from ..config import Key
from ..data.image_io import read_image
from ..data.loading import DropMissing, SampleReader, unwrap_dataset
from ..data.samplers import ResumableBatchSampler, ShardSampler, TrainBatchSampler
from ..registry import DATASETS, EVALUATORS, MODELS, ConfigError
from ..utils import dist
from ..visualization import to_display

DATA_SCHEMA = {
    "root": Key((str, None), None, doc="data folder, for ${data.root} references"),
    "batch_size": Key(int, 8, min=1, doc="training samples per process and iteration"),
    "val_batch_size": Key((int, None), None, min=1, doc="evaluation batch (default: batch_size)"),
    "num_workers": Key(int, 2, min=0),
    "pin_memory": Key(bool, False),
    "persistent_workers": Key(bool, False),
    "skip_corrupt": Key(bool, True, doc="skip unreadable images (logged and counted) instead of stopping"),
    "train": Key((dict, None), None, free=True, doc="dataset: {type: ..., transforms: [...]}"),
    "val": Key((dict, None), None, free=True),
    "test": Key((dict, None), None, free=True),
}
EVALUATION_SCHEMA = {
    "metric": Key((str, None), None, doc="the metric that decides best.pth"),
    "rule": Key(str, "greater", choices=("greater", "less")),
    "evaluator": Key((dict, None), None, free=True, doc="{type: ..., options}; default: the task's evaluator"),
}


def move_to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj


class Task:
    # default evaluator ``type`` when the config's ``evaluation.evaluator`` names none
    default_evaluator: Optional[str] = None

    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = cfg
        self.data_cfg: Dict[str, Any] = cfg.get("data") or {}
        self.eval_cfg: Dict[str, Any] = cfg.get("evaluation") or {}

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        """The config sections this task owns, with their keys and defaults."""
        return {"task": Key(str, doc="the task runner"),
                "model": Key(dict, free=True, doc="{type: a registered model, ...its arguments}"),
                "data": dict(DATA_SCHEMA),
                "evaluation": dict(EVALUATION_SCHEMA)}

    # ---- building -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return MODELS.build(self.cfg["model"], key="model")

    def has_split(self, split: str) -> bool:
        return bool(self.data_cfg.get(split))

    def build_dataset(self, split: str) -> Dataset:
        if not self.data_cfg.get(split):
            raise ConfigError(f"data.{split} is not set in the config: add a dataset section for the {split} split")
        dataset = DATASETS.build(self.data_cfg[split], key=f"data.{split}")
        if len(dataset) == 0:
            raise ConfigError(f"data.{split}: the dataset is empty; check its root/ann_file paths")
        return dataset

    def check_compatible(self, model: nn.Module, dataset: Dataset, split: str) -> None:
        """Raise a clear error when the model and the data disagree (e.g. number of classes)."""

    def collate(self, items: List[Any]) -> Any:
        images, targets, metas = zip(*items)
        return default_collate(list(images)), default_collate(list(targets)), list(metas)

    def train_batch_sampler(self, dataset: Dataset, batch_size: int, seed: int) -> ResumableBatchSampler:
        return TrainBatchSampler(len(dataset), batch_size, seed=seed)

    def _loader(self, dataset: Dataset, seed: int, train: bool, **kw) -> DataLoader:
        workers = self.data_cfg.get("num_workers", 0)
        return DataLoader(SampleReader(dataset, seed, self.data_cfg.get("skip_corrupt", True), train=train),
                          num_workers=workers, collate_fn=DropMissing(self.collate),
                          pin_memory=self.data_cfg.get("pin_memory", False),
                          persistent_workers=bool(self.data_cfg.get("persistent_workers")) and workers > 0,
                          generator=torch.Generator().manual_seed(seed), **kw)

    def build_train_loader(self, seed: int) -> DataLoader:
        """The training loader; its batch sampler follows the resumable protocol (data/samplers.py)."""
        dataset = self.build_dataset("train")
        sampler = self.train_batch_sampler(dataset, self.data_cfg.get("batch_size", 8), seed)
        return self._loader(dataset, seed, train=True, batch_sampler=sampler)

    def build_eval_loader(self, split: str, seed: int) -> DataLoader:
        dataset = self.build_dataset(split)
        bs = self.data_cfg.get("val_batch_size") or self.data_cfg.get("batch_size", 8)
        return self._loader(dataset, seed, train=False, batch_size=bs, sampler=ShardSampler(len(dataset)))

    def to_device(self, batch: Any, device: torch.device) -> Any:
        inputs, targets, metas = batch
        return move_to(inputs, device), move_to(targets, device), metas

    def batch_size(self, batch: Any) -> int:
        return len(batch[2])

    # ---- training -------------------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: Any, optims) -> Dict[str, torch.Tensor]:
        """One iteration: the model's losses, summed, one backward, every optimizer steps (at the end
        of its accumulation window). Tasks with several optimizers stepped in turn override this."""
        inputs, targets, _ = batch
        with optims.context():
            losses = model(inputs, targets)
            if not isinstance(losses, dict) or not losses:
                raise TypeError(f"{type(getattr(model, 'module', model)).__name__} must return a dict of loss "
                                f"tensors in train mode, got {type(losses).__name__}")
            optims.update(losses)
        return losses

    def state_dict(self) -> Dict[str, Any]:
        """What the task keeps between iterations (e.g. a GAN's image pool), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    # ---- evaluation -----------------------------------------------------------------------------
    def build_evaluator(self, dataset: Dataset, split: str):
        ev_cfg = dict(self.eval_cfg.get("evaluator") or {})
        ev_cfg.setdefault("type", self.default_evaluator)
        if ev_cfg["type"] is None:
            raise ConfigError(f"task {type(self).__name__} has no evaluator; set evaluation.evaluator.type")
        return EVALUATORS.build(ev_cfg, key="evaluation.evaluator", dataset=dataset)

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
        evaluator = self.build_evaluator(unwrap_dataset(loader.dataset), split)
        evaluator.writing = out_dir is not None
        model.eval()
        ctx = autocast or contextlib.nullcontext
        for i, batch in enumerate(loader):
            if batch is None:  # every sample of the batch was unreadable (and skipped)
                continue
            inputs, targets, metas = self.to_device(batch, device)
            with ctx():
                outputs = self.predict(model, inputs)
            evaluator.process(outputs, targets, metas)
            if progress is not None:
                progress(i + 1, len(loader))
        metrics = evaluator.compute()
        if dist.is_main():
            text = evaluator.report()
            if text:
                logging.getLogger("torchcv").info(text)
            if out_dir is not None:
                evaluator.write(out_dir)
            if vis_dir is not None:
                evaluator.visualize(vis_dir)
        return metrics

    # ---- pictures (tools/demo.py, tools/browse_dataset.py) --------------------------------------
    def class_names(self, dataset: Optional[Dataset]) -> Optional[Sequence[str]]:
        names = getattr(dataset, "classes", None) if dataset is not None else None
        return list(names) if names is not None else None

    def prepare_image(self, image: torch.Tensor, dataset: Optional[Dataset]) -> torch.Tensor:
        """A uint8 [3, H, W] image as the model's input for one sample: the evaluation transforms
        of ``dataset`` (when given), then floats in [0, 1] if the transforms left uint8."""
        x: Any = tv_tensors.Image(image)
        transforms = getattr(dataset, "transforms", None)
        if transforms is not None:
            x = transforms(x)
        x = torch.as_tensor(x).as_subclass(torch.Tensor)
        return x.float().div(255) if x.dtype == torch.uint8 else x

    @torch.no_grad()
    def predict_image(self, model: nn.Module, path: str, dataset: Optional[Dataset],
                      device: torch.device) -> Dict[str, Any]:
        """The model's prediction for one image file, in the file's pixel coordinates."""
        image = read_image(path)
        x = self.prepare_image(image, dataset)
        size = tuple(image.shape[-2:])
        meta = {"index": 0, "path": path, "orig_size": size, "input_size": tuple(x.shape[-2:])}
        inputs, _, metas = self.collate([(x, self.dummy_target(x), meta)])
        model.eval()
        out = self.predict(model, move_to(inputs, device))
        return {"image": image, "output": self.first_output(out), "meta": metas[0]}

    def dummy_target(self, x: torch.Tensor) -> Any:
        return 0

    def first_output(self, out: Any) -> Any:
        return out[0]

    def draw_prediction(self, image: torch.Tensor, output: Any, meta: Dict[str, Any], dataset: Optional[Dataset],
                        score_thr: float = 0.5) -> np.ndarray:
        """The prediction of ``predict_image`` drawn over the original image."""
        raise NotImplementedError(f"{type(self).__name__} cannot draw predictions")

    def draw_sample(self, image: torch.Tensor, target: Any, dataset: Dataset) -> np.ndarray:
        """One dataset item (after its transforms) as a picture of its ground truth."""
        raise NotImplementedError(f"{type(self).__name__} cannot draw samples")

    def display_image(self, image: torch.Tensor, dataset: Optional[Dataset]) -> np.ndarray:
        return to_display(image, getattr(dataset, "transforms", None))
