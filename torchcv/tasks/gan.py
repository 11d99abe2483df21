"""Image-to-image translation runner (pix2pix, CycleGAN): the ``gan`` task.

Batches are ``({"A": real_A, "B": real_B}, real_B, metas)`` with images in [-1, 1]. One training
iteration follows the reference implementation's order, each network group through its own named
optimizer (``gan.generator_optimizer`` / ``gan.discriminator_optimizer``, default ``G`` / ``D``):

- pix2pix: generator forward; D step (real pair vs detached fake pair); G step with D frozen;
- CycleGAN: generator forward; G step with both discriminators frozen; D step on fakes drawn
  through the image pools.

"Frozen" is ``requires_grad_(False)`` on the discriminators' parameters during the generator's
forward and backward, as the reference does: no gradient is computed for them. The image pools
(``gan.pool_size`` fakes each, CycleGAN) are task state, saved in every checkpoint with their random
generators, so a resumed run continues exactly (the reference keeps them only in memory).

The task trains in one process: it steps the networks outside DDP (the reference order needs a
generator forward shared by two backward passes), so NGPUS > 1 is refused with a clear message.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import Key
from ..data.datasets.translation import PairedImageDataset, to_model_range, with_channels
from ..data.image_io import read_image
from ..evaluation.translation import to_uint8_hwc as display
from ..registry import TASKS, ConfigError
from ..utils import dist
from ..utils.rng import derive_seed
from ..utils.weights import unwrap
from .base import Task, move_to
from .image_pool import ImagePool

# A translation model (torchcv/models/gans/translation.py) provides generate, generator_losses,
# discriminator_losses, set_discriminators_trainable, step_order, pooled, in_channels, out_channels.
GAN_SCHEMA = {
    "pool_size": Key(int, 50, min=0, doc="fakes kept by each image pool (CycleGAN); 0: no pool"),
    "generator_optimizer": Key(str, "G", doc="the optimizer of the generators"),
    "discriminator_optimizer": Key(str, "D", doc="the optimizer of the discriminators"),
}


def side_by_side(*images: np.ndarray, gap: int = 2) -> np.ndarray:
    """HWC uint8 images in a row, each scaled to the first one's height."""
    h = images[0].shape[0]
    tiles = []
    for im in images:
        if im.shape[0] != h:
            im = cv2.resize(im, (max(1, round(im.shape[1] * h / im.shape[0])), h), interpolation=cv2.INTER_AREA)
        tiles += [im, np.full((h, gap, 3), 255, np.uint8)]
    return np.concatenate(tiles[:-1], axis=1)


@TASKS.register("gan")
class GanTask(Task):
    default_evaluator = "TranslationEvaluator"

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        s = super().schema()
        s["gan"] = dict(GAN_SCHEMA)
        return s

    def __init__(self, cfg: Dict[str, Any]):
        super().__init__(cfg)
        gan = cfg.get("gan") or {}
        self.pool_size = int(gan.get("pool_size", 50))
        self.g_name = gan.get("generator_optimizer", "G")
        self.d_name = gan.get("discriminator_optimizer", "D")
        self.seed = int(cfg.get("seed") or 0)  # the trainer's seed (--seed) replaces it in build_train_loader
        self.pools: Dict[str, ImagePool] = {}

    # ---- building -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        model = super().build_model()
        if not all(hasattr(model, a) for a in ("generate", "generator_losses", "discriminator_losses", "step_order")):
            raise ConfigError(f"task gan trains translation models (Pix2Pix, CycleGAN); model.type "
                              f"{type(model).__name__} is not one")
        opt = self.cfg.get("optimizer") or {}
        names = [] if "type" in opt else list(opt)
        missing = [n for n in (self.g_name, self.d_name) if n not in names]
        if missing:
            raise ConfigError(f"task gan steps the optimizers '{self.g_name}' (generators) and '{self.d_name}' "
                              f"(discriminators); the optimizer section names {names or ['default']}. Write "
                              f"optimizer: {{{self.g_name}: {{type: Adam, ..., params: [netG]}}, {self.d_name}: "
                              f"{{type: Adam, ..., params: [netD]}}}} (or set gan.generator_optimizer / "
                              f"gan.discriminator_optimizer)")
        self.pools = {name: ImagePool(self.pool_size, seed=derive_seed(self.seed, 7103, i))
                      for i, name in enumerate(model.pooled)}
        return model

    def build_train_loader(self, seed: int):
        if dist.get_world_size() > 1:
            raise ConfigError("task gan trains in one process (its networks are stepped in the reference's order "
                              "outside DDP): run with NGPUS=1")
        self.seed = seed  # seeds the image pools (the trainer builds the loader before the model)
        return super().build_train_loader(seed)

    def check_compatible(self, model: nn.Module, dataset: Dataset, split: str) -> None:
        net = unwrap(model)
        for side, want, have in (("A (input)", net.in_channels, getattr(dataset, "in_channels", None)),
                                 ("B (output)", net.out_channels, getattr(dataset, "out_channels", None))):
            if have is not None and want != have:
                key = "in_channels" if side.startswith("A") else "out_channels"
                raise ConfigError(f"model.{key}={want} but data.{split} gives {have}-channel {side} images: set "
                                  f"model.{key}={have}, or the dataset's channels_A / channels_B to {want}")

    def collate(self, items: List[Any]):
        a, b, metas = zip(*items)
        real_a, real_b = torch.stack(a), torch.stack(b)
        return {"A": real_a, "B": real_b}, real_b, list(metas)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        inputs, _, metas = batch
        inputs = move_to(inputs, device)
        return inputs, inputs["B"], metas

    # ---- training -------------------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: Any, optims) -> Dict[str, torch.Tensor]:
        inputs, _, _ = batch
        real_a, real_b = inputs["A"], inputs["B"]
        net = unwrap(model)
        fakes = net.generate(real_a, real_b)
        losses: Dict[str, torch.Tensor] = {}
        for part in net.step_order:
            if part == "D":
                optim = optims[self.d_name]
                with optim.context():
                    total, logged = net.discriminator_losses(real_a, real_b, fakes, self.pools)
                    optim.update(total)
            else:
                optim = optims[self.g_name]
                net.set_discriminators_trainable(False)  # no gradients for D while G learns to fool it
                try:
                    with optim.context():
                        total, logged = net.generator_losses(real_a, real_b, fakes)
                        optim.update(total)
                finally:
                    net.set_discriminators_trainable(True)
            losses.update(logged)
        return losses

    def state_dict(self) -> Dict[str, Any]:
        return {"pools": {name: pool.state_dict() for name, pool in self.pools.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for name, pool_state in (state.get("pools") or {}).items():
            if name in self.pools:
                self.pools[name].load_state_dict(pool_state)

    # ---- evaluation -----------------------------------------------------------------------------
    def predict(self, model: nn.Module, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {**model(inputs["A"], inputs["B"]), "real_A": inputs["A"], "real_B": inputs["B"]}

    # ---- pictures (tools/demo.py, tools/browse_dataset.py) --------------------------------------
    def display_image(self, image: torch.Tensor, dataset: Optional[Dataset]) -> np.ndarray:
        return display(image)

    def prepare_input(self, image: torch.Tensor, dataset: Optional[Dataset], channels: int) -> torch.Tensor:
        """A file's uint8 image as the generator's input: the A half of an aligned pair file, the
        dataset's channels and evaluation transforms, then [-1, 1]."""
        if isinstance(dataset, PairedImageDataset) and dataset.layout == "aligned" and \
                image.shape[-1] == 2 * image.shape[-2]:
            a, b = image[..., :image.shape[-2]], image[..., image.shape[-2]:]
            image = a if dataset.direction == "AtoB" else b
        x = with_channels(image, channels)
        transforms = getattr(dataset, "transforms", None)
        if transforms is not None:
            from torchvision import tv_tensors
            x = transforms(tv_tensors.Image(x))
        return to_model_range(x)

    @torch.no_grad()
    def predict_image(self, model: nn.Module, path: str, dataset: Optional[Dataset],
                      device: torch.device) -> Dict[str, Any]:
        net = unwrap(model)
        image = read_image(path)
        x = self.prepare_input(image, dataset, net.in_channels)
        model.eval()
        out = model(x[None].to(device))
        meta = {"index": 0, "path": path, "orig_size": tuple(image.shape[-2:]), "input_size": tuple(x.shape[-2:])}
        return {"image": x, "output": {k: v[0].cpu() for k, v in out.items()}, "meta": meta}

    def draw_prediction(self, image: torch.Tensor, output: Any, meta: Dict[str, Any], dataset,
                        score_thr: float = 0.0) -> np.ndarray:
        """input | translation (| reconstruction, CycleGAN), at the model's input size."""
        tiles = [display(image), display(output["fake_B"])]
        if "rec_A" in output:
            tiles.append(display(output["rec_A"]))
        return side_by_side(*tiles)

    def draw_sample(self, image: torch.Tensor, target: Any, dataset) -> np.ndarray:
        """A | B after the transforms."""
        return side_by_side(display(image), display(target))
