"""What sits between a dataset and a DataLoader: per-sample random streams and the one policy for
unreadable images, shared by every task.

``SampleReader`` wraps a dataset. The training batch samplers yield ``(index, epoch)`` keys;
evaluation samplers plain indices. Each item is read with python/numpy/torch generators seeded by
(seed, epoch, index) and restored afterwards, so

- a sample's augmentation depends only on the seed, the epoch and the sample: a run gives the same
  result with 0 or 8 workers, and a run resumed mid-epoch sees exactly the batches of an
  uninterrupted one;
- reading data never consumes the main process's random streams (with ``num_workers: 0``, the
  model's dropout or sampling would otherwise depend on the data pipeline).

A ``CorruptImageError`` is, with ``data.skip_corrupt: true`` (default), logged with the file and a
running count; training then reads the next sample instead, evaluation leaves the sample out (the
collate function drops it). With ``skip_corrupt: false`` it stops the run naming the file.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, List, Optional

from torch.utils.data import Dataset

from ..utils.errors import CorruptImageError
from ..utils.rng import derive_seed, preserved_rng, seed_cpu_streams

logger = logging.getLogger("torchcv")
EVAL_EPOCH = -1


class SampleReader(Dataset):
    def __init__(self, dataset: Dataset, seed: int, skip_corrupt: bool = True, train: bool = True):
        self.dataset = dataset
        self.seed = seed
        self.skip_corrupt = skip_corrupt
        self.train = train
        self.skipped: set = set()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # dataset metadata (classes, num_classes, coco ...) reads through; guard against recursion
        # while unpickling in a worker, before ``dataset`` exists
        if name.startswith("__") or name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: Any) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: List[Any]) -> List[Any]:
        """A batch of items (the DataLoader's fetcher calls this): the outer random streams are
        saved and restored once per batch, each item is read on its own seeded streams."""
        with preserved_rng(cuda=False):
            return [self._read(key) for key in keys]

    def _read(self, key: Any) -> Any:
        index, epoch = key if isinstance(key, tuple) else (key, EVAL_EPOCH)
        n = len(self.dataset)
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                seed_cpu_streams(derive_seed(self.seed, epoch, i))
                return self.dataset[i]
            except CorruptImageError as e:
                if not self.skip_corrupt:
                    raise CorruptImageError(f"{e}. Remove or replace the file, or set data.skip_corrupt=true "
                                            f"to skip unreadable images.") from None
                self.skipped.add(i)
                logger.warning("skipping corrupt image (%d skipped so far in this process): %s", len(self.skipped), e)
                if not self.train:
                    return None  # evaluation: leave it out rather than count another sample twice
        raise CorruptImageError(f"every sample of {type(self.dataset).__name__} is unreadable")


def unwrap_dataset(dataset: Any) -> Any:
    return dataset.dataset if isinstance(dataset, SampleReader) else dataset


class DropMissing:
    """Collate only the items that were read (evaluation leaves skipped ones out as None); a batch
    with nothing left is None, which the evaluation loop passes over."""

    def __init__(self, collate: Callable[[List[Any]], Any]):
        self.collate = collate

    def __call__(self, items: List[Any]) -> Optional[Any]:
        items = [x for x in items if x is not None]
        return self.collate(items) if items else None
