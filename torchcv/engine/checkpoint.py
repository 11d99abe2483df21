"""Training checkpoints: everything needed to continue, written atomically, loaded safely.

Layout in a work dir: ``checkpoints/epoch_N.pth`` or ``iter_N.pth``, ``best.pth`` and a
``last_checkpoint`` file holding the name of the newest complete checkpoint. Files are written
with temp-file + fsync + rename, and the pointer is only moved after the file is complete, so a
kill at any moment leaves either the previous state or the new one. Loading always uses
``torch.load(weights_only=True)``: a checkpoint holds tensors and plain data, never code.

Format 2 (``format: 2``) holds ``model``, ``optimizers`` (per name: optimizer, LR schedule position,
update count, gradients of a half-finished accumulation window), ``scaler``, ``ema``, ``task``
(the task's own state, e.g. a GAN's image pools), ``hooks`` (per hook, e.g. the best metric so far
and the logging window), ``meta`` (epoch, iteration, position in the epoch, versions), ``rng`` and
the resolved ``config``. ``upgrade_checkpoint`` reads the first format (one ``optimizer`` and one
``scheduler``, the best score in ``meta``).
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..utils.errors import CheckpointError
from ..utils.fileio import atomic_write, atomic_write_text
from ..utils.weights import extract_state_dict, load_checkpoint, load_weights, remap_keys, unwrap  # noqa: F401

logger = logging.getLogger("torchcv")
POINTER = "last_checkpoint"
FORMAT = 2
TRAINING_KEYS = ("model", "optimizers", "meta", "rng")


def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def set_pointer(ckpt_dir: str, name: str) -> None:
    atomic_write_text(os.path.join(ckpt_dir, POINTER), name + "\n")


def _ckpt_sort_key(path: str) -> Tuple[int, float]:
    m = re.search(r"(\d+)\.pth$", os.path.basename(path))
    return (int(m.group(1)) if m else -1, os.path.getmtime(path))


def list_checkpoints(ckpt_dir: str) -> List[str]:
    files = glob.glob(os.path.join(ckpt_dir, "epoch_*.pth")) + glob.glob(os.path.join(ckpt_dir, "iter_*.pth"))
    return sorted(files, key=_ckpt_sort_key)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """Newest checkpoint in ``work_dir`` that loads; corrupt ones are skipped with a warning."""
    ckpt_dir = os.path.join(work_dir, "checkpoints")
    candidates = list_checkpoints(ckpt_dir)
    pointer = os.path.join(ckpt_dir, POINTER)
    if os.path.isfile(pointer):
        with open(pointer) as f:
            named = os.path.join(ckpt_dir, f.read().strip())
        if named in candidates:
            candidates.remove(named)
            candidates.append(named)  # the pointer's target is the preferred one
    for path in reversed(candidates):
        try:
            load_checkpoint(path)
            return path
        except CheckpointError as e:
            logger.warning("skipping unusable checkpoint: %s", e)
    return None


def upgrade_checkpoint(state: Dict[str, Any], path: str) -> Dict[str, Any]:
    """A training checkpoint in the current format; first-format files are converted."""
    if state.get("format", 1) >= FORMAT:
        return state
    if "optimizer" not in state or "scheduler" not in state:
        return state  # not a training checkpoint: the caller reports what is missing
    meta = dict(state.get("meta") or {})
    out = dict(state)
    out["format"] = FORMAT
    out["optimizers"] = {"default": {"optimizer": state["optimizer"], "scheduler": state["scheduler"],
                                     "updates": int(meta.get("iter", 0)), "steps": None, "pending_grads": None}}
    out["hooks"] = {"checkpoint": {"best_score": meta.get("best_score"), "best_metric": meta.get("best_metric")}}
    out["task"] = {}
    for k in ("optimizer", "scheduler"):
        out.pop(k)
    logger.info("%s is in the first checkpoint format: read as optimizer 'default'", path)
    return out


def missing_training_keys(state: Dict[str, Any]) -> List[str]:
    return [k for k in TRAINING_KEYS if k not in state]
