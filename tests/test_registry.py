import sys

import pytest
from torch import nn

import torchcv  # noqa: F401
from torchcv.registry import ARCHS, MODELS, ConfigError, Registry

from conftest import run


def test_unknown_name_lists_close_names():
    with pytest.raises(ConfigError) as e:
        MODELS.build({"type": "ImageClasifier", "arch": "resnet18", "num_classes": 3})
    assert "ImageClassifier" in str(e.value)
    with pytest.raises(ConfigError, match="resnet18"):
        ARCHS.get("resnet81")


def test_nested_build_and_unknown_argument():
    reg = Registry("test_things")

    @reg.register()
    class Leaf:
        def __init__(self, size: int = 1):
            self.size = size

    @reg.register()
    class Parent:
        def __init__(self, child, items=()):
            self.child, self.items = child, items

    p = reg.build({"type": "Parent", "child": {"type": "Leaf", "size": 3}, "items": [{"type": "Leaf"}, 5]})
    assert isinstance(p.child, Leaf) and p.child.size == 3
    assert isinstance(p.items[0], Leaf) and p.items[1] == 5
    with pytest.raises(ConfigError, match=r"parent.child \(Leaf\): unknown argument 'sise'.*'size'"):
        reg.build({"type": "Parent", "child": {"type": "Leaf", "sise": 3}}, key="parent")


def test_model_from_registry_has_head_for_num_classes():
    m = MODELS.build({"type": "ImageClassifier", "arch": "resnet18", "num_classes": 7})
    assert isinstance(m, nn.Module) and m.net.fc.out_features == 7


def test_list_models_cli():
    out = run([sys.executable, "tools/list_models.py", "archs"]).stdout
    for name in ("resnet50", "mnasnet1_3", "inception_v3"):
        assert name in out
    assert "FeatureBackbone" in run([sys.executable, "tools/list_models.py", "backbones"]).stdout
    bad = run([sys.executable, "tools/list_models.py", "modles"], check=False)
    assert bad.returncode == 2 and "models" in bad.stderr
