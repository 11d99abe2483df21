import os
import textwrap

import pytest

from torchcv.config import load_config
from torchcv.registry import ConfigError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_base_merge_lists_replace_delete_and_interpolation(tmp_path):
    write(tmp_path, "base/a.yaml", """
        task: classification
        data: {root: /data, batch_size: 8, train: {type: X, root: "${data.root}/train", transforms: [1, 2, 3]}}
        optimizer: {type: SGD, lr: 0.1, momentum: 0.9}
    """)
    cfg_path = write(tmp_path, "child.yaml", """
        _base_: base/a.yaml
        data: {root: /other, train: {transforms: [9]}}
        optimizer: {_delete_: true, type: AdamW, lr: 0.001}
    """)
    cfg = load_config(cfg_path, check_schema=False)
    assert cfg["data"]["batch_size"] == 8                       # dicts merge
    assert cfg["data"]["train"]["transforms"] == [9]            # lists replace
    assert cfg["optimizer"] == {"type": "AdamW", "lr": 0.001}   # _delete_ replaces the dict
    assert cfg["data"]["train"]["root"] == "/other/train"       # interpolation after merging (not stale)


def test_overrides_are_yaml_typed_with_list_indices(tmp_path):
    p = write(tmp_path, "c.yaml", """
        data: {batch_size: 8, train: {transforms: [{type: A, size: 3}, {type: B}]}}
        train: {max_epochs: 2, amp: null}
    """)
    cfg = load_config(p, ["train.max_epochs=20", "data.train.transforms.0.size=512", "train.amp=bf16",
                          "data.batch_size=16"], check_schema=False)
    assert cfg["train"]["max_epochs"] == 20 and isinstance(cfg["train"]["max_epochs"], int)
    assert cfg["data"]["train"]["transforms"][0]["size"] == 512
    assert cfg["train"]["amp"] == "bf16"


def test_interpolation_whole_value_keeps_type_and_env(tmp_path, monkeypatch):
    p = write(tmp_path, "c.yaml", """
        data: {batch_size: 8, val_batch_size: "${data.batch_size}", root: "${env:MY_ROOT,/fallback}"}
    """)
    assert load_config(p, check_schema=False)["data"]["val_batch_size"] == 8
    assert load_config(p, check_schema=False)["data"]["root"] == "/fallback"
    monkeypatch.setenv("MY_ROOT", "/from/env")
    assert load_config(p, check_schema=False)["data"]["root"] == "/from/env"


MODEL = "task: classification\nmodel: {type: ImageClassifier, arch: resnet18, num_classes: 3}\n"


def test_unknown_key_with_did_you_mean_names_file(tmp_path):
    p = write(tmp_path, "c.yaml", MODEL + "train: {max_epoch: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "train.max_epoch" in str(e.value) and "max_epochs" in str(e.value) and "c.yaml" in str(e.value)


def test_unknown_override_key(tmp_path):
    p = write(tmp_path, "c.yaml", MODEL + "train: {max_epochs: 3}\n")
    with pytest.raises(ConfigError, match="did you mean.*max_epochs|Did you mean: 'max_epochs'"):
        load_config(p, ["train.max_epoch=4"])
    assert load_config(p, ["+meta.note=hi"])["meta"]["note"] == "hi"  # '+' adds a new key


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, "bad.yaml", MODEL + "train:\n  max_epochs: 3\n   log_interval: [1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "bad.yaml:5" in str(e.value) or "bad.yaml:6" in str(e.value)


def test_missing_and_cyclic_base(tmp_path):
    p = write(tmp_path, "c.yaml", "_base_: nope.yaml\n")
    with pytest.raises(ConfigError, match="nope.yaml.*not found"):
        load_config(p)
    write(tmp_path, "a.yaml", "_base_: b.yaml\n")
    b = write(tmp_path, "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cyclic _base_"):
        load_config(b)


def test_interpolation_of_missing_key(tmp_path):
    p = write(tmp_path, "c.yaml", MODEL + "data: {root: /d, batch_size: '${data.batch_sise}'}\n")
    with pytest.raises(ConfigError, match=r"data.batch_sise.*does not exist"):
        load_config(p)


def test_wrong_type_for_known_key(tmp_path):
    p = write(tmp_path, "c.yaml", MODEL + "train: {max_epochs: ten}\n")
    with pytest.raises(ConfigError, match=r"train.max_epochs.*must be int or null.*got str 'ten'"):
        load_config(p)
    with pytest.raises(ConfigError, match="must be bool"):
        load_config(write(tmp_path, "d.yaml", MODEL + "deterministic: 3\n"))


def test_every_shipped_config_loads():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    paths = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
             if f.endswith(".yaml") and "_base_" not in d]
    assert paths
    for p in paths:
        cfg = load_config(p)
        assert cfg["task"], p


CLS = "configs/cls/shapes/resnet18_shapes.yaml"
DET = "configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml"


@pytest.mark.parametrize("config,override,owner", [
    (DET, "+test.mode=slide", "detection"),                  # the segmentation task's inference option
    (DET, "+evaluation.topk=[1, 5]", "detection"),           # an evaluator option outside evaluation.evaluator
    (CLS, "+data.sampler={aspect_ratio_group_factor: 3}", "classification"),  # detection's sampler
    (CLS, "+data.collate=default", "classification"),        # read by nobody
])
def test_keys_of_another_task_are_errors(config, override, owner):
    key = override[1:].split("=")[0].replace("test.mode", "test")
    # an unknown section is named itself ('test'), an unknown key in a known section in full
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'?.*\(in <command line>\): neither the "
                                          rf"{owner} task nor the trainer reads it"):
        load_config(config, [override])


def test_defaults_come_from_the_owners_and_overrides_need_no_plus():
    cfg = load_config(CLS, ["train.amp=bf16", "data.pin_memory=true"])
    assert cfg["train"]["amp"] == "bf16" and cfg["data"]["pin_memory"] is True
    assert cfg["train"]["log_interval"] == 10 and cfg["train"]["accumulate"] == 1 and cfg["data"]["num_workers"] == 2
    assert cfg.origin["train.accumulate"] == "<default>" and cfg.origin["train.amp"] == "<command line>"
    det = load_config(DET)
    assert det["data"]["sampler"] == {"aspect_ratio_group_factor": 3} and "sampler" not in load_config(CLS)["data"]
    assert load_config("configs/seg/shapes/lraspp_mobilenet_v3_large_shapes.yaml")["test"]["mode"] == "whole"


@pytest.mark.parametrize("override,message", [
    ("data.batch_size=0", r"'data.batch_size'.*must be >= 1, got 0"),
    ("train.val_interval=0", r"'train.val_interval'.*must be >= 1"),
    ("train.by=epochs", r"'train.by'.*'epochs' is not one of epoch, iter"),
    ("train.amp=fp32", r"'train.amp'.*'fp32' is not one of fp16, bf16, null"),
    ("train.grad_clip=-1", r"'train.grad_clip'.*must be > 0"),
    ("data.num_workers=-2", r"'data.num_workers'.*must be >= 0"),
    ("evaluation.rule=bigger", r"'evaluation.rule'.*not one of greater, less"),
    ("task=clasification", r"'clasification' is not in the tasks registry.*'classification'"),
])
def test_values_torch_would_reject_later_fail_at_load(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CLS, [override])


def test_custom_imports_register_user_parts(tmp_path):
    (tmp_path / "my_parts.py").write_text(textwrap.dedent("""
        from torch import nn
        from torchcv.registry import MODELS
        from torchcv.engine.hooks import Hook
        from torchcv.registry import HOOKS

        @MODELS.register()
        class MyTinyClassifier(nn.Module):
            def __init__(self, num_classes: int = 6):
                super().__init__()
                self.num_classes = num_classes

        @HOOKS.register()
        class MyNoteHook(Hook):
            pass
    """))
    p = write(tmp_path, "c.yaml", f"""
        _base_: {os.path.abspath(CLS)}
        custom_imports: [my_parts]
        model: {{_delete_: true, type: MyTinyClassifier, num_classes: 6}}
        custom_hooks: [{{type: MyNoteHook}}]
    """)
    cfg = load_config(p)  # the config's folder is searched for the module
    from torchcv.registry import HOOKS, MODELS
    assert "MyTinyClassifier" in MODELS and "MyNoteHook" in HOOKS
    assert MODELS.build(cfg["model"]).num_classes == 6
    with pytest.raises(ConfigError, match="custom_imports: no module named 'not_my_parts'"):
        load_config(p, ["custom_imports=[not_my_parts]"])
    (tmp_path / "broken.py").write_text("def f(:\n")
    with pytest.raises(ConfigError, match="importing .*broken.* failed: SyntaxError"):
        load_config(p, ["custom_imports=[broken.py]"])
