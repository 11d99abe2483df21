"""Training sampler: per-epoch shuffle from (seed, epoch), sharded across ranks, resumable mid-epoch.

The order depends only on the seed and the epoch, so a resumed run sees exactly the samples the
uninterrupted run would have, and ranks of a distributed run see disjoint interleaved shards
whose union per step is the global batch of a single-process run with the same total batch.
"""
from __future__ import annotations

from typing import Iterator, List

import torch
from torch.utils.data import Sampler

from ..engine import dist


class TrainSampler(Sampler[int]):
    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None):
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = dist.get_rank() if rank is None else rank
        self.world = dist.get_world_size() if world_size is None else world_size
        self.epoch = 0
        self.start = 0  # samples of this rank's shard already consumed in this epoch
        self.per_rank = -(-size // self.world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, n_samples: int) -> None:
        self.start = n_samples

    def indices(self) -> List[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        order += order[: self.per_rank * self.world - self.size]  # pad so every rank gets as many
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        idx = self.indices()[self.start:]
        self.start = 0  # only the first epoch after a resume is partial
        return iter(idx)

    def __len__(self) -> int:
        return self.per_rank - self.start


class ShardSampler(Sampler[int]):
    """Evaluation: rank r takes r, r+W, ... with no padding, so nothing is counted twice."""

    def __init__(self, size: int):
        self.size, self.rank, self.world = size, dist.get_rank(), dist.get_world_size()

    def __iter__(self):
        return iter(range(self.rank, self.size, self.world))

    def __len__(self):
        return len(range(self.rank, self.size, self.world))
