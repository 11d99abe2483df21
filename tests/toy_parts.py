"""Small in-memory parts for engine tests: a vector dataset with random augmentation, a classifier
that records the autocast state it runs under, and a two-network model with a task that steps two
named optimizers in turn (a discriminator every iteration, a generator every other one)."""
from __future__ import annotations

import random
import textwrap
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from torchcv.engine.hooks import Hook
from torchcv.registry import DATASETS, HOOKS, MODELS, TASKS
from torchcv.tasks.classification import ClassificationTask


@DATASETS.register()
class ToyVectors(Dataset):
    """``n`` points of ``dim`` features around ``num_classes`` centres; ``noise`` adds fresh Gaussian
    noise on every read (an augmentation drawing from the global torch generator)."""

    def __init__(self, n: int = 64, dim: int = 8, num_classes: int = 3, seed: int = 0, noise: float = 0.1):
        g = torch.Generator().manual_seed(seed)
        centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(1234)) * 2
        self.labels = torch.arange(n) % num_classes
        self.x = centres[self.labels] + torch.randn(n, dim, generator=g)
        self.noise = noise
        self.classes = [f"c{i}" for i in range(num_classes)]
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.x[i] + self.noise * torch.randn(self.x.shape[1])
        return x, int(self.labels[i]), {"index": i, "path": f"vec{i}"}


@MODELS.register()
class ToyNet(nn.Module):
    """Linear -> dropout -> linear. Records ``(autocast enabled, autocast dtype)`` of each forward."""

    def __init__(self, dim: int = 8, num_classes: int = 3, hidden: int = 16, dropout: float = 0.0,
                 eval_draws_random: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, num_classes)
        self.eval_draws_random = eval_draws_random
        self.drop = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.seen: List[tuple] = []

    def forward(self, x, y=None):
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        logits = self.fc2(self.drop(torch.relu(self.fc1(x))))
        if not self.training:
            if self.eval_draws_random:  # like test-time augmentation: consumes every global stream
                random.random(), np.random.rand(), torch.rand(1)
            return logits
        return {"loss_cls": F.cross_entropy(logits.float(), y)}


@MODELS.register()
class ToyGAN(nn.Module):
    """``netG`` shifts the input, ``netD`` classifies the shifted input (both linear)."""

    def __init__(self, dim: int = 8, num_classes: int = 3):
        super().__init__()
        self.netG = nn.Sequential(nn.Linear(dim, dim))
        self.netD = nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Linear(16, num_classes))
        self.num_classes = num_classes
        self.seen: List[tuple] = []

    def forward(self, x, y=None):
        logits = self.netD(x + self.netG(x))
        if not self.training:
            return logits
        return {"loss_cls": F.cross_entropy(logits.float(), y)}  # the default (joint) step

    def d_loss(self, x, y):
        self.seen.append(("D", torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return F.cross_entropy(self.netD(x + self.netG(x).detach()).float(), y)

    def g_loss(self, x, y):
        self.seen.append(("G", torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return F.cross_entropy(self.netD(x + self.netG(x)).float(), y) + 0.1 * self.netG(x).pow(2).mean().float()


@TASKS.register("toy_alternating")
class ToyAlternatingTask(ClassificationTask):
    """D steps every iteration; G every other iteration with D frozen (the CycleGAN order). Keeps a
    pool of recent G outputs as task state, like a GAN image pool."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.calls = 0
        self.pool: List[torch.Tensor] = []

    def train_step(self, model, batch, optims):
        x, y, _ = batch
        net = getattr(model, "module", model)
        with optims["D"].context():
            loss_d = net.d_loss(x, y)
            optims["D"].update(loss_d)
        losses: Dict[str, Any] = {"loss_D": loss_d}
        if self.calls % 2 == 0:
            net.netD.requires_grad_(False)
            with optims["G"].context():
                loss_g = net.g_loss(x, y)
                optims["G"].update(loss_g)
            net.netD.requires_grad_(True)
            losses["loss_G"] = loss_g
            with torch.no_grad():
                self.pool = (self.pool + [net.netG(x[:1]).detach().clone()])[-3:]
        self.calls += 1
        return losses

    def state_dict(self):
        return {"calls": self.calls, "pool": list(self.pool)}

    def load_state_dict(self, state):
        self.calls = state.get("calls", 0)
        self.pool = list(state.get("pool", []))


@HOOKS.register()
class EventRecorder(Hook):
    """Records every hook event as (event, iteration)."""

    def __init__(self):
        self.events: List[tuple] = []

    def before_run(self, t): self.events.append(("before_run", t.iter))
    def before_epoch(self, t): self.events.append(("before_epoch", t.iter))
    def before_iter(self, t): self.events.append(("before_iter", t.iter))
    def after_backward(self, t, optim): self.events.append(("after_backward", t.iter, optim.name))
    def after_iter(self, t, losses): self.events.append(("after_iter", t.iter))
    def after_epoch(self, t): self.events.append(("after_epoch", t.iter))
    def after_val(self, t, metrics): self.events.append(("after_val", t.iter))
    def after_run(self, t): self.events.append(("after_run", t.iter))


TOY_CONFIG = """
task: classification
model: {type: ToyNet, dim: 8, num_classes: 3}
data:
  batch_size: 8
  num_workers: 0
  train: {type: ToyVectors, n: 64}
  val: {type: ToyVectors, n: 30, seed: 1, noise: 0.0}
optimizer: {type: SGD, lr: 0.1, momentum: 0.9}
lr_schedule: {policy: constant}
train: {by: epoch, max_epochs: 4, log_interval: 3, plot: false}
evaluation: {metric: top1, rule: greater}
"""

TOY_GAN_CONFIG = """
task: toy_alternating
model: {type: ToyGAN, dim: 8, num_classes: 3}
data:
  batch_size: 8
  num_workers: 0
  train: {type: ToyVectors, n: 64}
  val: {type: ToyVectors, n: 30, seed: 1, noise: 0.0}
optimizer:
  G: {type: Adam, lr: 0.01, params: netG, grad_clip: 0.05, accumulate: 2}
  D: {type: SGD, lr: 0.1, momentum: 0.9, params: netD}
lr_schedule:
  G: {policy: linear_decay, decay_start: 4}
  D: {policy: constant}
train: {by: iter, max_iters: 12, val_interval: 6, checkpoint_interval: 3, keep_checkpoints: 0, log_interval: 2,
        plot: false}
evaluation: {metric: top1}
"""


def write_config(tmp_path, text: str, name: str = "toy.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)
