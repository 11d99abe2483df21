"""Image-to-image translation datasets: paired (pix2pix) and unpaired (CycleGAN), in the layouts of the
reference implementation's datasets.

- ``PairedImageDataset(layout=aligned)``: ``root/<split>/*.jpg``, each file the A image and the B
  image side by side (A left), as the pix2pix downloads (facades, maps, edges2shoes ...); the halves
  are square, so a file is twice as wide as it is high.
- ``PairedImageDataset(layout=separate)``: ``root/A/<split>/<name>`` and ``root/B/<split>/<name>``
  (the folders the reference's ``combine_A_and_B.py`` reads), matched by file name.
- ``UnpairedImageDataset``: ``root/<split>A/`` and ``root/<split>B/`` (``trainA``, ``trainB``,
  ``testA``, ``testB`` as the CycleGAN downloads). An epoch has max(|A|, |B|) samples: A in order,
  B drawn at random (``serial: false``, training) or in order (``serial: true``, evaluation).

An item is ``(A, B, meta)``: float tensors [C, H, W] in [-1, 1] (``channels_A`` / ``channels_B``: 3
RGB, or 1 grey), ``meta`` = ``{index, path (A's file), path_B, orig_size, input_size}``.
``direction: BtoA`` swaps the two sides. Paired images go through the transforms together (one
crop, one flip for both); unpaired images each on their own. Transforms that leave uint8 images
(``Resize``, ``RandomCrop``, ``RandomHorizontalFlip`` ...) are mapped to [-1, 1] afterwards; a
pipeline that ends in float images is taken as it is.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from ...registry import DATASETS, ConfigError
from ...utils.errors import DataError, MissingFileError
from ..image_io import IMG_EXTENSIONS, read_image
from ..transforms import compose


def list_images(folder: str) -> List[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the generators end in tanh); float images pass unchanged."""
    x = x.as_subclass(torch.Tensor)
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def with_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    return TF.rgb_to_grayscale(image, num_output_channels=1) if channels == 1 else image


class _TranslationBase(Dataset):
    """Shared options: ``direction``, ``channels_A`` / ``channels_B``, ``transforms``."""

    paired_ground_truth = False  # whether B is the true translation of A (paired metrics apply)

    def __init__(self, root: str, split: str, direction: str, channels_A: int, channels_B: int,
                 transforms: Optional[Sequence[Any]]):
        name = type(self).__name__
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"{name}.direction: '{direction}' must be AtoB or BtoA")
        for key, c in (("channels_A", channels_A), ("channels_B", channels_B)):
            if c not in (1, 3):
                raise ConfigError(f"{name}.{key}={c!r}: images are read as 3 (RGB) or 1 (grey) channels")
        if not os.path.isdir(root):
            raise ConfigError(f"{name}.root: dataset folder '{root}' does not exist. Fix data.root (or pass "
                              f"data.root=PATH), or create the built-in data with the run script / datasets/ generator.")
        self.root, self.split, self.direction = root, split, direction
        # channels of the model's input (A) and output (B) sides, after ``direction``
        self.in_channels, self.out_channels = (channels_A, channels_B) if direction == "AtoB" else (channels_B, channels_A)
        self.channels_A, self.channels_B = channels_A, channels_B
        # domain names of the model's input and output sides (for classifier scores)
        self.domains = ("A", "B") if direction == "AtoB" else ("B", "A")
        self.transforms = compose(transforms, key=f"{name}.transforms")

    def _finish(self, index: int, a: torch.Tensor, b: torch.Tensor, path_a: str, path_b: str,
                orig_size: Tuple[int, int]):
        a, b = to_model_range(a), to_model_range(b)
        meta = {"index": index, "path": path_a, "path_B": path_b, "orig_size": orig_size,
                "input_size": tuple(a.shape[-2:])}
        return a, b, meta


@DATASETS.register()
class PairedImageDataset(_TranslationBase):
    """Paired images for pix2pix (module docstring). Args: root, split, layout (aligned | separate),
    direction (AtoB | BtoA), channels_A, channels_B, transforms (applied to A and B together)."""

    paired_ground_truth = True

    def __init__(self, root: str, split: str = "train", layout: str = "aligned", direction: str = "AtoB",
                 channels_A: int = 3, channels_B: int = 3, transforms: Optional[Sequence[Any]] = None):
        super().__init__(root, split, direction, channels_A, channels_B, transforms)
        if layout not in ("aligned", "separate"):
            raise ConfigError(f"PairedImageDataset.layout: '{layout}' must be aligned (A|B in one file) or "
                              f"separate (A/<split>/ and B/<split>/ folders)")
        self.layout = layout
        if layout == "aligned":
            folder = os.path.join(root, split)
            if not os.path.isdir(folder):
                raise ConfigError(f"PairedImageDataset: folder not found: {folder}. The aligned layout keeps A|B "
                                  f"images in root/<split>/; for A/ and B/ folders set layout: separate")
            self.samples = [(p, p) for p in list_images(folder)]
        else:
            dir_a, dir_b = os.path.join(root, "A", split), os.path.join(root, "B", split)
            for d in (dir_a, dir_b):
                if not os.path.isdir(d):
                    raise ConfigError(f"PairedImageDataset: folder not found: {d}. The separate layout keeps "
                                      f"root/A/<split>/ and root/B/<split>/ with the same file names")
            self.samples = []
            for pa in list_images(dir_a):
                pb = os.path.join(dir_b, os.path.basename(pa))
                if not os.path.isfile(pb):
                    raise MissingFileError(f"{pa} has no partner {pb}: every A image needs a B image of the same "
                                           f"name in the separate layout")
                self.samples.append((pa, pb))
        if not self.samples:
            where = os.path.join(root, split) if layout == "aligned" else os.path.join(root, "A", split)
            raise DataError(f"PairedImageDataset: no images in {where} (extensions {', '.join(IMG_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.samples)

    def split_aligned(self, image: torch.Tensor, path: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """(A, B) halves of an aligned file; raises DataError naming the file when it is not 2:1."""
        h, w = image.shape[-2:]
        if w != 2 * h:
            raise DataError(f"{path} is {w}x{h} (width x height): an aligned pair holds A and B side by side, so "
                            f"its width must be twice its height. Use layout: separate for A/ and B/ folders, or "
                            f"re-combine the pair")
        return image[..., :h], image[..., h:]

    def __getitem__(self, index: int):
        path_a, path_b = self.samples[index]
        if self.layout == "aligned":
            a, b = self.split_aligned(read_image(path_a), path_a)
        else:
            a, b = read_image(path_a), read_image(path_b)
            if a.shape[-2:] != b.shape[-2:]:
                raise DataError(f"{path_a} ({a.shape[-1]}x{a.shape[-2]}) and {path_b} ({b.shape[-1]}x{b.shape[-2]}) "
                                f"differ in size; a pair must show the same scene at the same size")
        a, b = with_channels(a, self.channels_A), with_channels(b, self.channels_B)
        if self.direction == "BtoA":
            a, b, path_a, path_b = b, a, path_b, path_a
        orig = tuple(a.shape[-2:])
        a, b = self.transforms(tv_tensors.Image(a), tv_tensors.Image(b))  # one crop / flip for both
        return self._finish(index, a, b, path_a, path_b, orig)


@DATASETS.register()
class UnpairedImageDataset(_TranslationBase):
    """Unpaired images for CycleGAN (module docstring). Args: root, split (folders <split>A and
    <split>B), direction, channels_A, channels_B, transforms (each side on its own), serial (B in
    order; default: false for the train split, true otherwise), ground_truth_pairs (the i-th A and
    B files show the same scene: the evaluator then also reports paired metrics; built-in data)."""

    def __init__(self, root: str, split: str = "train", direction: str = "AtoB", channels_A: int = 3,
                 channels_B: int = 3, transforms: Optional[Sequence[Any]] = None, serial: Optional[bool] = None,
                 ground_truth_pairs: bool = False):
        super().__init__(root, split, direction, channels_A, channels_B, transforms)
        files = {}
        for side in ("A", "B"):
            folder = os.path.join(root, f"{split}{side}")
            if not os.path.isdir(folder):
                raise ConfigError(f"UnpairedImageDataset: folder not found: {folder}. Unpaired data keeps "
                                  f"root/{split}A/ and root/{split}B/ (trainA, trainB, testA, testB)")
            files[side] = list_images(folder)
            if not files[side]:
                raise DataError(f"UnpairedImageDataset: {folder} holds no images (extensions "
                                f"{', '.join(IMG_EXTENSIONS)}): unpaired training needs images of both domains, "
                                f"in {split}A/ and {split}B/")
        if direction == "BtoA":
            files = {"A": files["B"], "B": files["A"]}
        self.files_A, self.files_B = files["A"], files["B"]
        self.serial = split != "train" if serial is None else bool(serial)
        if ground_truth_pairs and (len(self.files_A) != len(self.files_B) or not self.serial):
            raise ConfigError(f"UnpairedImageDataset.ground_truth_pairs needs serial: true and as many A as B images "
                              f"({len(self.files_A)} and {len(self.files_B)} in {root}/{split}A|B)")
        self.paired_ground_truth = bool(ground_truth_pairs)

    def __len__(self) -> int:
        return max(len(self.files_A), len(self.files_B))

    def __getitem__(self, index: int):
        path_a = self.files_A[index % len(self.files_A)]
        if self.serial:
            path_b = self.files_B[index % len(self.files_B)]
        else:  # drawn on the sample's own seeded stream (SampleReader): the same B on every read
            path_b = self.files_B[int(torch.randint(len(self.files_B), ()))]
        channels = (self.channels_A, self.channels_B) if self.direction == "AtoB" else (self.channels_B, self.channels_A)
        a = with_channels(read_image(path_a), channels[0])
        b = with_channels(read_image(path_b), channels[1])
        orig = tuple(a.shape[-2:])
        a = self.transforms(tv_tensors.Image(a))
        b = self.transforms(tv_tensors.Image(b))
        return self._finish(index, a, b, path_a, path_b, orig)

