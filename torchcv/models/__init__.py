from . import backbones, classifiers
