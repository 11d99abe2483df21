"""Aspect-ratio grouped batch sampler: each batch holds images of one aspect-ratio bin, so padding
variable-sized images into a batch wastes little. Deterministic by (seed, epoch), sharded across
ranks like TrainSampler, and resumable mid-epoch (``set_start`` counts batches)."""
from __future__ import annotations

import bisect
from typing import Dict, Iterator, List, Sequence

import torch
from torch.utils.data import Sampler

from ..engine import dist


def aspect_ratio_bins(ratios: Sequence[float], group_factor: int = 3) -> List[int]:
    """Bin index of each ratio: ``2 ** linspace(-1, 1, 2k+1)`` edges (k = group_factor);
    ``group_factor < 0`` puts everything in one bin."""
    if group_factor < 0:
        return [0] * len(ratios)
    edges = (2 ** torch.linspace(-1, 1, 2 * group_factor + 1)).tolist() if group_factor > 0 else [1.0]
    return [bisect.bisect_right(edges, r) for r in ratios]


class GroupedBatchSampler(Sampler[List[int]]):
    def __init__(self, groups: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        self.groups = list(groups)
        self.batch_size = batch_size
        self.seed, self.shuffle = seed, shuffle
        self.rank = dist.get_rank() if rank is None else rank
        self.world = dist.get_world_size() if world_size is None else world_size
        self.per_rank = -(-len(self.groups) // self.world)
        self.epoch = 0
        self.start = 0  # batches of this epoch already consumed (resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, n_batches: int) -> None:
        self.start = n_batches

    def batches(self) -> List[List[int]]:
        n = len(self.groups)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        order += order[: self.per_rank * self.world - n]
        mine = order[self.rank::self.world]
        buckets: Dict[int, List[int]] = {}
        out: List[List[int]] = []
        for i in mine:
            b = buckets.setdefault(self.groups[i], [])
            b.append(i)
            if len(b) == self.batch_size:
                out.append(b)
                buckets[self.groups[i]] = []
        # leftovers of unfinished bins make mixed batches, in the shuffled order
        rest = sorted((i for b in buckets.values() for i in b), key=mine.index)
        out += [rest[k:k + self.batch_size] for k in range(0, len(rest) - self.batch_size + 1, self.batch_size)]
        return out

    def __iter__(self) -> Iterator[List[int]]:
        batches = self.batches()[self.start:]
        self.start = 0
        return iter(batches)

    def __len__(self) -> int:
        return self.per_rank // self.batch_size - self.start
