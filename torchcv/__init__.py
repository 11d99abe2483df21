"""TorchCV: a config-driven computer-vision training framework on PyTorch.

Importing the package imports every module, so every built-in part is in its registry.
"""
__version__ = "0.1.0"

from . import registry, config  # noqa: F401
from . import ops  # noqa: F401
from . import data, models, evaluation, tasks, engine, deploy  # noqa: F401
