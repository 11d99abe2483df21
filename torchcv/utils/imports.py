"""Imports: eager registration of built-ins and the config's ``custom_imports``."""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from typing import Iterable, Optional


def import_submodules(package_name: str, package_path) -> None:
    """A package's ``__init__`` imports every module in its folder, so each registers its parts."""
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")


def import_custom_modules(names: Iterable[str], config_dir: Optional[str] = None) -> None:
    """Import user modules named by a config's ``custom_imports`` so their models, datasets, hooks
    and tasks register. An entry is a dotted module name (found on ``sys.path``, the current folder
    or the config's folder) or a path to a ``.py`` file (relative to the config's folder).
    Raises ImportError with a message naming the entry; the caller turns it into a ConfigError."""
    for name in names:
        if not isinstance(name, str) or not name:
            raise ImportError(f"custom_imports: entries must be module names or .py paths, got {name!r}")
        if name.endswith(".py"):
            path = name if os.path.isabs(name) or config_dir is None else os.path.join(config_dir, name)
            if not os.path.isfile(path) and os.path.isfile(name):
                path = name
            if not os.path.isfile(path):
                raise ImportError(f"custom_imports: file '{name}' not found (looked for {os.path.abspath(path)})")
            mod_name = "torchcv_custom_" + os.path.splitext(os.path.basename(path))[0]
            if mod_name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_name]
                raise
            continue
        extra = [p for p in (os.getcwd(), config_dir) if p and p not in sys.path]
        sys.path.extend(extra)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                raise ImportError(f"custom_imports: no module named '{name}' (searched sys.path, the current "
                                  f"folder and the config's folder); check the name or PYTHONPATH") from None
            raise
