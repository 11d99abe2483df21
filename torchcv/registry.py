"""Flat, eager registries (docs/architecture.md, principle 2).

A config's ``type:`` names a registered class or function. ``Registry.build`` builds a config dict
recursively: every nested dict (or list item) that has a ``type`` key is built first, so
constructors receive ready objects.  Nested names are looked up in the same registry first and
then in every other registry; the first registry that has the name wins, in registration order.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Dict, List, Optional


from .utils.errors import ConfigError  # noqa: F401  (re-exported: most callers import it from here)


_ALL_REGISTRIES: List["Registry"] = []


def close_names(name: str, candidates, n: int = 5) -> List[str]:
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates) -> str:
    hits = close_names(name, candidates)
    return f" Did you mean: {', '.join(repr(h) for h in hits)}?" if hits else ""


class Registry:
    def __init__(self, name: str):
        self.name = name
        self._items: Dict[str, Callable] = {}
        _ALL_REGISTRIES.append(self)

    def register(self, name: Optional[str] = None, obj: Optional[Callable] = None, force: bool = False):
        """Decorator (``@REG.register()`` / ``@REG.register('alias')``) or direct call with ``obj``."""

        def _add(target):
            key = name or target.__name__
            if key in self._items and not force and self._items[key] is not target:
                raise KeyError(f"'{key}' is already registered in {self.name} by {self._items[key]!r}")
            self._items[key] = target
            return target

        return _add(obj) if obj is not None else _add

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> List[str]:
        return sorted(self._items)

    def get(self, name: str) -> Callable:
        if name in self._items:
            return self._items[name]
        raise ConfigError(f"'{name}' is not in the {self.name} registry.{did_you_mean(name, self._items)} "
                          f"List what exists with: python tools/list_models.py {self.name}")

    def build(self, cfg: Any, key: str = "", **extra) -> Any:
        """Build ``cfg`` (a dict with ``type``). ``key`` is its dotted path in the config, for errors."""
        if not isinstance(cfg, dict) or "type" not in cfg:
            raise ConfigError(f"{key or self.name}: expected a dict with a 'type' key naming a {self.name} entry, "
                              f"got {cfg!r}")
        return _build_node(cfg, key or self.name, self, extra)


def find_registry(name: str, preferred: Optional[Registry] = None) -> Optional[Registry]:
    if preferred is not None and name in preferred:
        return preferred
    for reg in _ALL_REGISTRIES:
        if name in reg:
            return reg
    return None


def all_registries() -> List[Registry]:
    return list(_ALL_REGISTRIES)


def build_nested(value: Any, key: str, preferred: Optional[Registry] = None) -> Any:
    """Build every ``type`` dict inside ``value`` (dicts and lists are walked)."""
    if isinstance(value, dict):
        if "type" in value and isinstance(value["type"], str):
            reg = find_registry(value["type"], preferred)
            if reg is None:
                every = [n for r in _ALL_REGISTRIES for n in r.names()]
                raise ConfigError(f"{key}: type '{value['type']}' is not registered anywhere."
                                  f"{did_you_mean(value['type'], every)}")
            return _build_node(value, key, reg, {})
        return {k: build_nested(v, f"{key}.{k}", preferred) for k, v in value.items()}
    if isinstance(value, list):
        return [build_nested(v, f"{key}.{i}", preferred) for i, v in enumerate(value)]
    return value


def _build_node(cfg: dict, key: str, reg: Registry, extra: dict) -> Any:
    cfg = dict(cfg)
    type_name = cfg.pop("type")
    target = reg.get(type_name) if not callable(type_name) else type_name
    kwargs = {k: build_nested(v, f"{key}.{k}", reg) for k, v in cfg.items()}
    kwargs.update(extra)
    where = f"{key} ({type_name})"
    check_arguments(target, kwargs, where)
    try:
        return target(**kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e) or "missing" in str(e) and "required" in str(e):
            raise ConfigError(f"{where}: {e}") from None
        raise


def check_arguments(target: Callable, kwargs: dict, where: str) -> None:
    """Unknown constructor arguments are errors (never silently ignored)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in kwargs:
        if name not in accepted:
            raise ConfigError(f"{where}: unknown argument '{name}'.{did_you_mean(name, accepted)} "
                              f"Accepted: {', '.join(accepted)}")
    missing = [n for n, p in params.items()
               if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in kwargs]
    if missing:
        raise ConfigError(f"{where}: missing required argument(s) {', '.join(missing)}")


MODELS = Registry("models")          # whole models: classifiers, detectors, segmentors, GANs
ARCHS = Registry("archs")            # whole networks by architecture name (resnet18, mobilenet_v2 ...)
BACKBONES = Registry("backbones")    # feature extractors: a network's intermediate feature maps
NECKS = Registry("necks")
HEADS = Registry("heads")
LOSSES = Registry("losses")
DATASETS = Registry("datasets")
TRANSFORMS = Registry("transforms")
TASKS = Registry("tasks")            # one runner per task
HOOKS = Registry("hooks")
EVALUATORS = Registry("evaluators")
