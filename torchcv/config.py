"""YAML configs: ``_base_`` inheritance, ``${a.b}`` interpolation, ``a.b=value`` overrides, schema checks.

Order of operations (so no value is ever stale): load the file and its bases recursively and merge
(dicts merge, lists replace, ``_delete_: true`` replaces a dict) -> apply command-line overrides ->
resolve ``${...}`` references on the fully merged tree -> validate against the schema.
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Dict, List, Sequence, Tuple

import yaml

from .registry import ConfigError, did_you_mean

# Every top-level key, and for the sections the trainer reads, every key with its accepted types.
# Sections that are passed to constructors (model, datasets, optimizer ...) are checked by the
# constructor's signature when built instead.
NoneType = type(None)
SCHEMA: Dict[str, Any] = {
    "task": str,
    "model": dict,
    "data": {
        "root": (str, NoneType), "batch_size": int, "val_batch_size": (int, NoneType),
        "num_workers": int, "pin_memory": bool, "persistent_workers": bool,
        "train": (dict, NoneType), "val": (dict, NoneType), "test": (dict, NoneType),
        "sampler": (dict, NoneType), "skip_corrupt": bool, "collate": (str, NoneType),
    },
    "optimizer": dict,
    "lr_schedule": dict,
    "train": {
        "by": str, "max_epochs": (int, NoneType), "max_iters": (int, NoneType),
        "val_interval": int, "checkpoint_interval": int, "keep_checkpoints": int,
        "log_interval": int, "amp": (str, NoneType), "grad_clip": (float, int, NoneType),
        "accumulate": int, "ema": (float, NoneType), "sync_bn": bool,
        "find_unused_parameters": bool, "save_best": bool, "plot": bool, "val_at_end": bool,
    },
    "evaluation": {"metric": (str, NoneType), "rule": str, "topk": (list, NoneType)},
    "test": (dict, NoneType),
    "custom_hooks": list,
    "seed": (int, NoneType),
    "deterministic": bool,
    "work_dir": (str, NoneType),
    "load_from": (str, NoneType),
    "resume": (bool, str, NoneType),
    "device": (str, NoneType),
    "meta": (dict, NoneType),
}

_REF = re.compile(r"\$\{([^}]+)\}")
COMMAND_LINE = "<command line>"


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"YAML syntax error at {where}: {problem}. Check indentation and quoting there.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict, new: dict, origin: Dict[str, str], src: str, prefix: str = "") -> dict:
    """Merge ``new`` into a copy of ``base``. ``origin`` records which file set each key."""
    out = dict(base)
    for k, v in new.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v.get("_delete_", False):
            v = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
            out[k] = copy.deepcopy(v)
            _record(origin, path, v, src)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, origin, src, path + ".")
            origin[path] = src
        else:
            out[k] = copy.deepcopy(v)
            _record(origin, path, v, src)
    return out


def _record(origin: Dict[str, str], path: str, v: Any, src: str) -> None:
    origin[path] = src
    if isinstance(v, dict):
        for k, vv in v.items():
            _record(origin, f"{path}.{k}", vv, src)


def _load_tree(path: str, origin: Dict[str, str], stack: Tuple[str, ...]) -> dict:
    path = os.path.normpath(os.path.abspath(path))
    if path in stack:
        chain = " -> ".join(os.path.relpath(p) for p in stack + (path,))
        raise ConfigError(f"cyclic _base_ inheritance: {chain}. Remove one of these _base_ entries.")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths, got {bases!r}")
    merged: dict = {}
    for b in bases:
        bpath = b if os.path.isabs(b) else os.path.join(os.path.dirname(path), b)
        if not os.path.isfile(bpath):
            raise ConfigError(f"{path}: _base_ file '{b}' not found (looked for {os.path.normpath(bpath)}). "
                              f"Paths in _base_ are relative to the config that names them.")
        merged = _merge(merged, _load_tree(bpath, origin, stack + (path,)), origin, bpath)
    return _merge(merged, data, origin, path)


def parse_overrides(items: Sequence[str]) -> List[Tuple[str, Any]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.path=value (e.g. train.max_epochs=20)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def _split(key: str) -> List[str]:
    return [p for p in key.split(".") if p != ""]


def get_path(cfg: Any, key: str, default: Any = KeyError) -> Any:
    node = cfg
    for part in _split(key):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            if default is KeyError:
                raise KeyError(key)
            return default
    return node


def apply_override(cfg: dict, key: str, value: Any, origin: Dict[str, str]) -> None:
    """Set ``key`` (dotted, list indices allowed). A leading ``+`` allows creating a new key."""
    create = key.startswith("+")
    parts = _split(key.lstrip("+"))
    node: Any = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not (part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node)):
                raise ConfigError(f"override {key}: '{'.'.join(parts[:i])}' is a list of {len(node)} items; "
                                  f"'{part}' is not a valid index")
            idx = int(part)
            if last:
                node[idx] = value
            else:
                node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: '{'.'.join(parts[:i])}' is a {type(node).__name__}, not a mapping")
        if part not in node and not create:
            raise ConfigError(f"override {key}: unknown key '{here}'.{did_you_mean(part, node.keys())} "
                              f"Prefix the override with '+' to add a new key.")
        if last:
            node[part] = value
            _record(origin, here, value, COMMAND_LINE)
        else:
            if part not in node:
                node[part] = {}
            node = node[part]


def _resolve(cfg: dict) -> dict:
    """Resolve ``${a.b}`` and ``${env:NAME,default}`` against the merged config, recursively."""

    def lookup(ref: str, chain: Tuple[str, ...]) -> Any:
        if ref.startswith("env:"):
            name, _, default = ref[4:].partition(",")
            if name in os.environ:
                return os.environ[name]
            if _:
                return yaml.safe_load(default) if default else ""
            raise ConfigError(f"${{{ref}}}: environment variable {name} is not set and no default is given "
                              f"(write ${{env:{name},default}})")
        if ref in chain:
            raise ConfigError(f"cyclic interpolation: {' -> '.join(chain + (ref,))}")
        try:
            target = get_path(cfg, ref)
        except KeyError:
            parent, _, leaf = ref.rpartition(".")
            siblings = get_path(cfg, parent, {}) if parent else cfg
            hint = did_you_mean(leaf, siblings.keys()) if isinstance(siblings, dict) else ""
            raise ConfigError(f"interpolation ${{{ref}}} refers to a key that does not exist.{hint}") from None
        return walk(target, chain + (ref,))

    def walk(node: Any, chain: Tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, chain) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, chain) for v in node]
        if isinstance(node, str) and "${" in node:
            whole = _REF.fullmatch(node)
            if whole:
                return lookup(whole.group(1).strip(), chain)
            return _REF.sub(lambda m: str(lookup(m.group(1).strip(), chain)), node)
        return node

    return walk(cfg, ())


def _type_names(t) -> str:
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join("null" if x is NoneType else x.__name__ for x in ts)


def validate(cfg: dict, origin: Dict[str, str], schema: Dict[str, Any] = SCHEMA, prefix: str = "") -> None:
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        src = origin.get(path, origin.get(prefix.rstrip("."), "?"))
        if key not in schema:
            raise ConfigError(f"unknown config key '{path}' (in {src}).{did_you_mean(key, schema.keys())} "
                              f"Known keys here: {', '.join(sorted(schema))}")
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' (in {src}) must be a mapping, got {value!r}")
            validate(value, origin, expected, path + ".")
            continue
        types = expected if isinstance(expected, tuple) else (expected,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"config key '{path}' (in {src}) must be {_type_names(expected)}, "
                              f"got {type(value).__name__} {value!r}")


class Config(dict):
    """The resolved config: a plain dict plus where it came from (``filename``, ``origin``)."""

    filename: str = ""
    origin: Dict[str, str]

    def get_path(self, key: str, default: Any = None) -> Any:
        return get_path(self, key, default)

    def dump(self) -> str:
        return yaml.safe_dump(dict(self), sort_keys=False, default_flow_style=None, allow_unicode=True)


def load_config(path: str, overrides: Sequence[str] = (), check_schema: bool = True) -> Config:
    origin: Dict[str, str] = {}
    tree = _load_tree(path, origin, ())
    for key, value in parse_overrides(overrides):
        apply_override(tree, key, value, origin)
    tree = _resolve(tree)
    if check_schema:
        validate(tree, origin)
    cfg = Config(tree)
    cfg.filename = path
    cfg.origin = origin
    return cfg


def config_from_text(text: str, filename: str = "<checkpoint>") -> Config:
    cfg = Config(yaml.safe_load(text) or {})
    cfg.filename = filename
    cfg.origin = {}
    return cfg


def save_config(cfg: dict, path: str) -> None:
    from .engine.fileio import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None, allow_unicode=True))
