"""YAML configs: ``_base_`` inheritance, ``${a.b}`` interpolation, ``a.b=value`` overrides, and one
owner per section.

Order of operations (so no value is ever stale): load the file and its bases recursively and merge
(dicts merge, lists replace, ``_delete_: true`` replaces a dict) -> import ``custom_imports`` ->
find the owners (the trainer and the config's task) and fill in their defaults -> apply
command-line overrides -> resolve ``${...}`` references on the fully merged tree -> validate every
key against the schema its owner declared.

Each owner declares its keys with ``Key`` (types, default, allowed range) in a plain dict, nested
for sections. A key that no owner declares is an error naming the file and close names: a key
meant for another task is never silently ignored. Sections passed to a constructor (``model``, the
dataset sections, ``optimizer`` ...) are declared ``free``: the constructor's signature checks them
when they are built.
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from .registry import ConfigError, did_you_mean

NoneType = type(None)
_MISSING = object()
DEFAULT = "<default>"


class Key:
    """One config key: accepted types (``None`` in ``types`` allows null), its default (omit for a
    required key), and optional checks: ``min``/``max`` (inclusive), ``above`` (exclusive lower
    bound), ``choices``. ``free=True``: a mapping whose contents this schema does not check."""

    def __init__(self, types, default: Any = _MISSING, *, min: Optional[float] = None, max: Optional[float] = None,
                 above: Optional[float] = None, choices: Optional[Sequence[Any]] = None, free: bool = False,
                 doc: str = ""):
        ts = types if isinstance(types, tuple) else (types,)
        self.types = tuple(NoneType if t is None else t for t in ts)
        self.default = default
        self.min, self.max, self.above, self.choices = min, max, above, choices
        self.free = free
        self.doc = doc

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def type_names(self) -> str:
        return " or ".join("null" if t is NoneType else t.__name__ for t in self.types)

    def check(self, path: str, value: Any, src: str) -> None:
        ok = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if float in self.types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"config key '{path}' (in {src}) must be {self.type_names()}, "
                              f"got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            shown = ", ".join("null" if c is None else str(c) for c in self.choices)
            raise ConfigError(f"config key '{path}' (in {src}): {value!r} is not one of {shown}."
                              f"{did_you_mean(str(value), [str(c) for c in self.choices if c is not None])}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise ConfigError(f"config key '{path}' (in {src}) must be >= {self.min}, got {value}")
            if self.max is not None and value > self.max:
                raise ConfigError(f"config key '{path}' (in {src}) must be <= {self.max}, got {value}")
            if self.above is not None and value <= self.above:
                raise ConfigError(f"config key '{path}' (in {src}) must be > {self.above}, got {value}")


Schema = Dict[str, Any]  # name -> Key, or name -> nested Schema (a section)


def merge_schemas(*schemas: Schema) -> Schema:
    """One schema from several owners; a key declared by two owners is a programming error."""
    out: Schema = {}
    for s in schemas:
        for k, v in s.items():
            if k in out:
                if isinstance(out[k], dict) and isinstance(v, dict):
                    out[k] = merge_schemas(out[k], v)
                    continue
                raise AssertionError(f"config key '{k}' is declared by two owners")
            out[k] = v
    return out


def schema_defaults(schema: Schema) -> dict:
    out = {}
    for k, v in schema.items():
        if isinstance(v, dict):
            out[k] = schema_defaults(v)
        elif not v.required:
            out[k] = copy.deepcopy(v.default)
    return out


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
            if part not in node or (create and node[part] is None):
                node[part] = {}
                origin[here] = COMMAND_LINE
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


def fill_defaults(tree: dict, schema: Schema, origin: Dict[str, str], prefix: str = "") -> dict:
    """Add every declared default that the config does not set (recorded as coming from <default>)."""
    out = dict(tree)
    for k, spec in schema.items():
        path = f"{prefix}{k}"
        if isinstance(spec, dict):
            if k not in out:
                out[k] = {}
                origin.setdefault(path, DEFAULT)
            if isinstance(out[k], dict):
                out[k] = fill_defaults(out[k], spec, origin, path + ".")
        elif k not in out and not spec.required:
            out[k] = copy.deepcopy(spec.default)
            _record(origin, path, out[k], DEFAULT)
    return out


def validate(cfg: dict, origin: Dict[str, str], schema: Schema, prefix: str = "", owners: str = "") -> None:
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        src = origin.get(path, origin.get(prefix.rstrip("."), "?"))
        if key not in schema:
            raise ConfigError(f"unknown config key '{path}' (in {src}): {owners or 'nothing'} reads it."
                              f"{did_you_mean(str(key), schema.keys())} Known keys here: {', '.join(sorted(schema))}")
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' (in {src}) must be a mapping, got {value!r}")
            validate(value, origin, spec, path + ".", owners)
            continue
        spec.check(path, value, src)
    for key, spec in schema.items():
        if not isinstance(spec, dict) and spec.required and key not in cfg:
            raise ConfigError(f"config key '{prefix}{key}' is missing ({spec.doc or spec.type_names()}); "
                              f"set it in the config or with {prefix}{key}=...")


class Config(dict):
    """The resolved config: a plain dict plus where it came from (``filename``, ``origin``)."""

    filename: str = ""
    origin: Dict[str, str]

    def get_path(self, key: str, default: Any = None) -> Any:
        return get_path(self, key, default)

    def dump(self) -> str:
        return yaml.safe_dump(dict(self), sort_keys=False, default_flow_style=None, allow_unicode=True)


def _peek(tree: dict, overrides: List[Tuple[str, Any]], key: str, default: Any = None) -> Any:
    for k, v in overrides:
        if k.lstrip("+") == key:
            return v
    return tree.get(key, default)


def _import_custom(modules: Any, path: str) -> None:
    from .utils.imports import import_custom_modules
    if modules in (None, []):
        return
    if not isinstance(modules, list):
        raise ConfigError(f"custom_imports (in {path}) must be a list of module names or .py paths, got {modules!r}")
    try:
        import_custom_modules(modules, os.path.dirname(os.path.abspath(path)))
    except ImportError as e:
        raise ConfigError(f"{e} (in {path})") from None
    except Exception as e:  # an error inside the user's module: say where, keep it one line
        raise ConfigError(f"custom_imports (in {path}): importing {modules} failed: {type(e).__name__}: {e}") from e


def owner_schema(task: Any, path: str) -> Tuple[Schema, str]:
    """The schema of a config for ``task``: what the trainer declares plus what the task declares."""
    from .engine.trainer import Trainer
    from .registry import TASKS
    if not isinstance(task, str) or not task:
        raise ConfigError(f"{path}: the config names no task (add e.g. 'task: classification'; "
                          f"tasks: {', '.join(TASKS.names())})")
    task_cls = TASKS.get(task)
    return merge_schemas(Trainer.schema(), task_cls.schema()), f"neither the {task} task nor the trainer"


def load_config(path: str, overrides: Sequence[str] = (), check_schema: bool = True) -> "Config":
    """Load ``path`` with its bases, defaults and ``overrides``; with ``check_schema`` every key must
    have an owner (turn it off only to test the file mechanics)."""
    origin: Dict[str, str] = {}
    tree = _load_tree(path, origin, ())
    parsed = parse_overrides(overrides)
    schema, owners = None, ""
    if check_schema:
        _import_custom(_peek(tree, parsed, "custom_imports"), path)
        schema, owners = owner_schema(_peek(tree, parsed, "task"), path)
        tree = fill_defaults(tree, schema, origin)
    for key, value in parsed:
        apply_override(tree, key, value, origin)
    tree = _resolve(tree)
    if schema is not None:
        validate(tree, origin, schema, owners=owners)
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
    from .utils.fileio import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None, allow_unicode=True))
