"""Loading checkpoints and weights safely (``torch.load(weights_only=True)``: tensors and plain data,
never code) and matching them to a model by name and shape.

Wherever a weights path is accepted, a torchvision weight name is too:
``torchvision://ResNet50_Weights.IMAGENET1K_V2`` (or ``...DEFAULT``). It resolves through
torchvision's weights API to the file in the torch hub cache (``$TORCH_HOME/hub/checkpoints``,
the file torchvision itself would download); a cached file loads offline, a missing one is
downloaded once unless ``TORCHCV_OFFLINE=1``, and a failed download names the URL, the file and the
folder to put it in.
"""
from __future__ import annotations

import difflib
import logging
import os
import pickle
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import torch

from .errors import CheckpointError

logger = logging.getLogger("torchcv")

TORCHVISION_SCHEME = "torchvision://"


def _weight_names() -> List[str]:
    """Every ``<Enum>.<member>`` torchvision knows (DEFAULT included)."""
    import torchvision

    names = []
    for model in torchvision.models.list_models():
        enum = torchvision.models.get_model_weights(model)
        names += [f"{enum.__name__}.{m}" for m in enum.__members__]
    return sorted(set(names))


def torchvision_weights(name: str):
    """The torchvision ``WeightsEnum`` member called ``name`` ("ResNet50_Weights.IMAGENET1K_V2")."""
    import torchvision

    if "." in name:
        try:
            return torchvision.models.get_weight(name)
        except (KeyError, ValueError, AttributeError):
            pass
    close = difflib.get_close_matches(name, _weight_names(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise CheckpointError(f"{TORCHVISION_SCHEME}{name}: torchvision has no weights of that name.{hint} Names look like "
                          f"ResNet50_Weights.IMAGENET1K_V2 or ResNet50_Weights.DEFAULT (torchvision.models.list_models(), "
                          f"torchvision.models.get_model_weights(name)).")


def hub_checkpoint_dir() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def resolve_weights(spec: str) -> str:
    """A local path for ``spec``: a path stays as it is; a torchvision weight name becomes its cached
    file in the torch hub cache (downloaded once when it is missing and downloads are allowed)."""
    if not isinstance(spec, str) or not spec.startswith(TORCHVISION_SCHEME):
        return spec
    name = spec[len(TORCHVISION_SCHEME):]
    weights = torchvision_weights(name)
    url = weights.url
    folder = hub_checkpoint_dir()
    path = os.path.join(folder, os.path.basename(url))
    if os.path.isfile(path):
        return path
    where = (f"put the file {os.path.basename(url)} (from {url}) into {folder} (the torch hub cache; TORCH_HOME "
             f"moves it)")
    if os.environ.get("TORCHCV_OFFLINE", "0") == "1":
        raise CheckpointError(f"{spec} is not in the torch hub cache and TORCHCV_OFFLINE=1: {where}")
    os.makedirs(folder, exist_ok=True)
    logger.info("downloading %s (%s) to %s", spec, url, path)
    try:
        torch.hub.download_url_to_file(url, path, progress=False)
    except Exception as e:  # no network, proxy, disk: all end in the same instruction
        raise CheckpointError(f"{spec}: cannot download {url} ({type(e).__name__}: {str(e)[:120]}); {where}") from None
    return path


def load_checkpoint(path: str, map_location: Any = "cpu") -> Dict[str, Any]:
    path = resolve_weights(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects that could execute code when unpickled "
            f"({str(e).splitlines()[0][:200]}). Only load checkpoints from sources you trust; re-save the "
            f"weights as a plain state_dict (torch.save(model.state_dict(), path)).") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({str(e).splitlines()[0][:200]}). "
            f"Delete it, or resume from an earlier checkpoint with --resume PATH.") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or state_dict")
    return obj


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper."""
    return model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                              torch.nn.DataParallel)) else model


def extract_state_dict(obj: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """Accept our checkpoints, ``{'state_dict': ...}``/``{'model': ...}`` wrappers and bare state_dicts."""
    for key in ("model", "state_dict"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    metadata = getattr(obj, "_metadata", None)  # module versions (e.g. MNASNet checks its own)
    sd = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if not sd:
        raise CheckpointError("no tensors found in checkpoint: expected a model state_dict")
    if all(k.startswith("module.") for k in sd):
        sd = OrderedDict((k[len("module."):], v) for k, v in sd.items())
        if metadata is not None:
            metadata = OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in metadata.items())
    if metadata is not None:
        sd._metadata = metadata
    return sd


def load_weights(model: torch.nn.Module, path: str, strict: bool = False,
                 key_map: Optional[Dict[str, str]] = None) -> Dict[str, List[str]]:
    """Load weights only (``load_from``). Shape mismatches are skipped and reported.

    Returns ``{'missing': [...], 'unexpected': [...], 'mismatched': [...]}``. Raises when nothing at
    all matches: that is a checkpoint from another model.
    """
    path = resolve_weights(path)
    if hasattr(unwrap(model), "load_torchcv_weights"):  # a model with its own file layout (int8 models)
        return unwrap(model).load_torchcv_weights(path)
    sd = extract_state_dict(load_checkpoint(path))
    if key_map:
        sd = remap_keys(sd, key_map)
    model = unwrap(model)
    own = model.state_dict()
    matched = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in sd.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in sd if k not in own]
    missing = [k for k in own if k not in matched]
    if not matched:
        raise CheckpointError(
            f"{path} does not fit this model ({type(model).__name__}): none of its {len(sd)} tensors match a "
            f"parameter name and shape (e.g. checkpoint key '{next(iter(sd))}' vs model key '{next(iter(own))}'). "
            f"Is it a checkpoint of another model? Check the config's model section or pass a key_map.")
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(f"{path}: strict load failed; missing {missing[:5]}, unexpected {unexpected[:5]}, "
                              f"mismatched {mismatched[:5]}")
    matched = OrderedDict(matched)
    matched._metadata = getattr(sd, "_metadata", None) or getattr(own, "_metadata", None)
    model.load_state_dict(matched, strict=False)
    report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    logger.info("loaded %d/%d tensors from %s", len(matched), len(own), path)
    for kind, keys in report.items():
        if keys:
            logger.warning("%s keys (%d): %s%s", kind, len(keys), ", ".join(keys[:8]), " ..." if len(keys) > 8 else "")
    return report


def remap_keys(sd: Dict[str, torch.Tensor], key_map: Dict[str, str]) -> Dict[str, torch.Tensor]:
    """Rename keys by prefix: ``{'old.prefix.': 'new.prefix.'}`` (longest prefix wins)."""
    prefixes = sorted(key_map, key=len, reverse=True)
    out = {}
    for k, v in sd.items():
        for p in prefixes:
            if k.startswith(p):
                k = key_map[p] + k[len(p):]
                break
        out[k] = v
    return out
