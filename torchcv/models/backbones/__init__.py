from torchcv.utils.imports import import_submodules

import_submodules(__name__, __path__)
from .features import FeatureBackbone, FrozenBatchNorm2d  # noqa: E402
