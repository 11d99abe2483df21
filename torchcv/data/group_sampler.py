"""Aspect-ratio grouped batch sampler: each batch holds images of one aspect-ratio bin, so padding
variable-sized images into a batch wastes little. A resumable batch sampler (see samplers.py):
deterministic by (seed, epoch), sharded across ranks, resumable mid-epoch."""
from __future__ import annotations

import bisect
from typing import Dict, List, Sequence

import torch

from .samplers import ResumableBatchSampler


def aspect_ratio_bins(ratios: Sequence[float], group_factor: int = 3) -> List[int]:
    """Bin index of each ratio: ``2 ** linspace(-1, 1, 2k+1)`` edges (k = group_factor);
    ``group_factor < 0`` puts everything in one bin."""
    if group_factor < 0:
        return [0] * len(ratios)
    edges = (2 ** torch.linspace(-1, 1, 2 * group_factor + 1)).tolist() if group_factor > 0 else [1.0]
    return [bisect.bisect_right(edges, r) for r in ratios]


class GroupedBatchSampler(ResumableBatchSampler):
    def __init__(self, groups: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__(seed, rank, world_size)
        self.groups = list(groups)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.per_rank = -(-len(self.groups) // self.world)

    def batches(self) -> List[List[int]]:
        mine = self.shard(len(self.groups), self.shuffle)
        buckets: Dict[int, List[int]] = {}
        out: List[List[int]] = []
        for i in mine:
            b = buckets.setdefault(self.groups[i], [])
            b.append(i)
            if len(b) == self.batch_size:
                out.append(b)
                buckets[self.groups[i]] = []
        # leftovers of unfinished bins make mixed batches, in the shuffled order
        position: Dict[int, int] = {}
        for k, i in enumerate(mine):
            position.setdefault(i, k)
        rest = sorted((i for b in buckets.values() for i in b), key=position.__getitem__)
        out += [rest[k:k + self.batch_size] for k in range(0, len(rest) - self.batch_size + 1, self.batch_size)]
        return out

    def __len__(self) -> int:
        return self.per_rank // self.batch_size
