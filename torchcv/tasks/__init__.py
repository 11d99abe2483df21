from torchcv.utils.imports import import_submodules

import_submodules(__name__, __path__)
from .base import Task, move_to  # noqa: E402
