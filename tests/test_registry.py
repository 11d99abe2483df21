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


def test_import_torchcv_fills_every_registry():
    # a fresh interpreter: nothing but `import torchcv`
    code = ("import torchcv\nfrom torchcv.registry import all_registries\n"
            "print({r.name: len(r) for r in all_registries()})")
    counts = eval(run([sys.executable, "-c", code]).stdout.strip().splitlines()[-1])
    assert set(counts) == {"models", "archs", "backbones", "necks", "heads", "losses", "datasets", "transforms",
                           "tasks", "hooks", "evaluators"}
    assert all(n > 0 for n in counts.values()), counts
    assert counts["hooks"] >= 6 and counts["tasks"] >= 3 and counts["archs"] >= 37
    out = run([sys.executable, "tools/list_models.py", "hooks"]).stdout
    for name in ("IterTimerHook", "LrSchedulerHook", "LoggerHook", "EvalHook", "CheckpointHook", "PlotHook"):
        assert name in out


def test_only_buildable_parts_are_registered():
    # every registered class can be built from a config: no plain tensor functions, no parts that
    # only a detector's constructor can assemble
    import inspect
    from torchcv.registry import all_registries
    for reg in all_registries():
        for name in reg.names():
            target = reg.get(name)
            assert callable(target), (reg.name, name)
            if reg.name == "losses":
                assert inspect.isclass(target) and issubclass(target, nn.Module), name
    from torchcv.registry import HEADS, LOSSES
    assert "RoIHeads" not in HEADS and "RPNHead" not in HEADS and "rpn_loss" not in LOSSES
