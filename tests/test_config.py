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
    cfg = load_config(cfg_path)
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
                          "data.batch_size=16"])
    assert cfg["train"]["max_epochs"] == 20 and isinstance(cfg["train"]["max_epochs"], int)
    assert cfg["data"]["train"]["transforms"][0]["size"] == 512
    assert cfg["train"]["amp"] == "bf16"


def test_interpolation_whole_value_keeps_type_and_env(tmp_path, monkeypatch):
    p = write(tmp_path, "c.yaml", """
        data: {batch_size: 8, val_batch_size: "${data.batch_size}", root: "${env:MY_ROOT,/fallback}"}
    """)
    assert load_config(p)["data"]["val_batch_size"] == 8
    assert load_config(p)["data"]["root"] == "/fallback"
    monkeypatch.setenv("MY_ROOT", "/from/env")
    assert load_config(p)["data"]["root"] == "/from/env"


def test_unknown_key_with_did_you_mean_names_file(tmp_path):
    p = write(tmp_path, "c.yaml", "train: {max_epoch: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "train.max_epoch" in str(e.value) and "max_epochs" in str(e.value) and "c.yaml" in str(e.value)


def test_unknown_override_key(tmp_path):
    p = write(tmp_path, "c.yaml", "train: {max_epochs: 3}\n")
    with pytest.raises(ConfigError, match="did you mean.*max_epochs|Did you mean: 'max_epochs'"):
        load_config(p, ["train.max_epoch=4"])
    assert load_config(p, ["+meta.note=hi"])["meta"]["note"] == "hi"  # '+' adds a new key


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, "bad.yaml", "train:\n  max_epochs: 3\n   log_interval: [1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "bad.yaml:3" in str(e.value) or "bad.yaml:4" in str(e.value)


def test_missing_and_cyclic_base(tmp_path):
    p = write(tmp_path, "c.yaml", "_base_: nope.yaml\n")
    with pytest.raises(ConfigError, match="nope.yaml.*not found"):
        load_config(p)
    write(tmp_path, "a.yaml", "_base_: b.yaml\n")
    b = write(tmp_path, "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cyclic _base_"):
        load_config(b)


def test_interpolation_of_missing_key(tmp_path):
    p = write(tmp_path, "c.yaml", "data: {root: /d, batch_size: '${data.batch_sise}'}\n")
    with pytest.raises(ConfigError, match=r"data.batch_sise.*does not exist"):
        load_config(p)


def test_wrong_type_for_known_key(tmp_path):
    p = write(tmp_path, "c.yaml", "train: {max_epochs: ten}\n")
    with pytest.raises(ConfigError, match=r"train.max_epochs.*must be int.*got str 'ten'"):
        load_config(p)
    with pytest.raises(ConfigError, match="must be bool"):
        load_config(write(tmp_path, "d.yaml", "deterministic: 3\n"))


def test_every_shipped_config_loads():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    paths = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
             if f.endswith(".yaml") and "_base_" not in d]
    assert paths
    for p in paths:
        cfg = load_config(p)
        assert cfg["task"], p
