"""Samplers. Training uses a *resumable batch sampler*, the one protocol the trainer relies on:

- ``set_epoch(epoch)``: the order of that epoch, a function of (seed, epoch) only;
- ``set_start(n)``: skip the first ``n`` batches of this epoch (a resumed run continues mid-epoch);
- iterating yields lists of ``(index, epoch)`` keys; the loader's dataset wrapper
  (``torchcv.data.loading.SampleReader``) reads item ``index`` on a random stream seeded by
  (seed, epoch, index), so augmentation does not depend on workers or on where a run resumed;
- ``len()`` is the number of batches of a full epoch on this process.

Ranks of a distributed run see disjoint interleaved shards whose union per step is the global batch
of a single-process run with the same total batch. Evaluation uses ``ShardSampler`` (no padding,
nothing counted twice).
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

import torch
from torch.utils.data import Sampler

from ..utils import dist

Key = Tuple[int, int]  # (dataset index, epoch)


class ResumableBatchSampler(Sampler[List[Key]]):
    """Base of training batch samplers: subclasses implement ``batches()`` for the current epoch."""

    def __init__(self, seed: int = 0, rank: int | None = None, world_size: int | None = None):
        self.seed = seed
        self.rank = dist.get_rank() if rank is None else rank
        self.world = dist.get_world_size() if world_size is None else world_size
        self.epoch = 0
        self.start = 0  # batches of this epoch already consumed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, n_batches: int) -> None:
        self.start = n_batches

    def shard(self, size: int, shuffle: bool = True) -> List[int]:
        """This rank's indices of the epoch: a (seed, epoch) permutation, padded so every rank gets
        as many, interleaved across ranks."""
        if shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(size, generator=g).tolist()
        else:
            order = list(range(size))
        per_rank = -(-size // self.world)
        order += order[: per_rank * self.world - size]
        return order[self.rank::self.world]

    def batches(self) -> List[List[int]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[List[Key]]:
        batches = self.batches()[self.start:]
        self.start = 0  # only the first epoch after a resume is partial
        epoch = self.epoch
        return iter([[(i, epoch) for i in b] for b in batches])

    def __len__(self) -> int:
        return len(self.batches())


class TrainBatchSampler(ResumableBatchSampler):
    """Shuffled (or sequential) batches of ``batch_size``; the incomplete last batch is dropped."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__(seed, rank, world_size)
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle

    def batches(self) -> List[List[int]]:
        mine = self.shard(self.size, self.shuffle)
        return [mine[k:k + self.batch_size] for k in range(0, len(mine) - self.batch_size + 1, self.batch_size)]

    def __len__(self) -> int:
        return (-(-self.size // self.world)) // self.batch_size


class ShardSampler(Sampler[int]):
    """Evaluation: rank r takes r, r+W, ... with no padding, so nothing is counted twice."""

    def __init__(self, size: int):
        self.size, self.rank, self.world = size, dist.get_rank(), dist.get_world_size()

    def __iter__(self):
        return iter(range(self.rank, self.size, self.world))

    def __len__(self):
        return len(range(self.rank, self.size, self.world))
