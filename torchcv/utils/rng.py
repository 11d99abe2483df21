"""Random-number state: seeding, saving/restoring every generator the trainer uses, and running a
block on its own random stream.

Evaluation runs inside ``isolated_rng`` (so how often a run validates never changes what it
trains), and each data sample is read on streams seeded by (seed, epoch, index) between a
``preserved_rng`` per batch (so a sample's augmentation depends only on the seed, the epoch and the
sample: not on the number of workers, on which worker reads it, or on where a resumed run started).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
from typing import Any, Dict, Iterator

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python versions (unlike hash())."""
    digest = hashlib.blake2b(",".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def rng_state() -> Dict[str, Any]:
    """Every generator's state as tensors and plain data (loadable with ``weights_only=True``)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    v, s, g = state["python"]
    random.setstate((v, tuple(s), g))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_cpu_streams(seed: int) -> None:
    """Seed python's, numpy's and torch's CPU generator (cheap: a few microseconds)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.random.default_generator.manual_seed(seed)


@contextlib.contextmanager
def preserved_rng(cuda: bool = True) -> Iterator[None]:
    """Put every generator back exactly as it was after the block (saving numpy's state costs
    tens of microseconds, so per-sample seeding saves once per batch)."""
    py = random.getstate()
    npy = np.random.get_state()
    cpu = torch.get_rng_state()
    gpu = torch.cuda.get_rng_state_all() if cuda and torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if gpu is not None:
            torch.cuda.set_rng_state_all(gpu)


@contextlib.contextmanager
def isolated_rng(seed: int, cuda: bool = True) -> Iterator[None]:
    """Run the block with python/numpy/torch (and CUDA) generators seeded from ``seed``, then put
    every generator back exactly as it was: the block neither consumes nor depends on the outer
    random streams."""
    with preserved_rng(cuda):
        seed_cpu_streams(seed)
        if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(seed)
        yield
