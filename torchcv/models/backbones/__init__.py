from . import torchvision_nets, features
from .features import FeatureBackbone, FrozenBatchNorm2d
