"""The trainer contract with a toy task and model in memory (as detectron2's engine tests do): the
loop and its hook order, resume, the best checkpoint, default/custom hooks and the storage."""
import json
import os
import shutil

import pytest
import torch

from torchcv.config import load_config
from torchcv.engine.checkpoint import load_checkpoint
from torchcv.engine.hooks import Hook
from torchcv.engine.trainer import Trainer
from torchcv.registry import HOOKS, ConfigError

from toy_parts import TOY_CONFIG, EventRecorder, write_config


def make(tmp_path, *over, wd="wd", text=TOY_CONFIG, **kw):
    cfg = load_config(write_config(tmp_path, text), list(over))
    return Trainer(cfg, str(tmp_path / wd), **kw)


def records(work_dir, mode):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["mode"] == mode]


def test_loop_and_hook_order(tmp_path):
    t = make(tmp_path, "train.max_epochs=2", "custom_hooks=[{type: EventRecorder}]")
    t.train()
    assert [type(h).__name__ for h in t.hooks] == ["IterTimerHook", "LrSchedulerHook", "LoggerHook", "EventRecorder",
                                                   "EvalHook", "CheckpointHook", "PlotHook"]
    events = [h for h in t.hooks if isinstance(h, EventRecorder)][0].events
    expected = [("before_run", 0)]
    for epoch in range(2):
        expected.append(("before_epoch", 8 * epoch))
        for i in range(8 * epoch, 8 * epoch + 8):
            expected += [("before_iter", i), ("after_backward", i, "default"), ("after_iter", i + 1)]
        expected += [("after_epoch", 8 * epoch + 8), ("after_val", 8 * epoch + 8)]
    expected.append(("after_run", 16))
    assert events == expected
    assert t.iter == 16 and t.epoch == 2 and t.inner_iter == 0
    assert sorted(os.listdir(tmp_path / "wd" / "checkpoints")) == ["best.pth", "epoch_1.pth", "epoch_2.pth",
                                                                    "last_checkpoint"]


def test_resume_is_bit_exact_with_dropout_and_augmentation(tmp_path):
    over = ["+model.dropout=0.3", "train.max_epochs=4", "train.keep_checkpoints=0"]
    make(tmp_path, *over, wd="straight").train()
    make(tmp_path, *over[:1], "train.max_epochs=2", wd="split").train()
    make(tmp_path, *over, wd="split", resume=True).train()
    a = load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "epoch_4.pth"))
    b = load_checkpoint(str(tmp_path / "split" / "checkpoints" / "epoch_4.pth"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["optimizers"]["default"]["optimizer"]["state"][0]["momentum_buffer"].equal(
        b["optimizers"]["default"]["optimizer"]["state"][0]["momentum_buffer"])
    assert a["hooks"]["checkpoint"] == b["hooks"]["checkpoint"]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "data_time", "memory_mb")} for r in rs]  # noqa
    assert strip(records(tmp_path / "straight", "train")) == strip(records(tmp_path / "split", "train"))
    assert records(tmp_path / "straight", "val") == records(tmp_path / "split", "val")


def test_resume_mid_epoch_restores_the_logging_window(tmp_path):
    # 8 iterations per epoch, logging every 3 and a checkpoint every 2 iterations: the resumed run
    # starts inside an open logging window
    over = ["train.by=iter", "train.max_iters=12", "train.checkpoint_interval=2", "train.keep_checkpoints=0",
            "train.val_interval=100"]
    make(tmp_path, *over, wd="straight").train()
    os.makedirs(tmp_path / "cut" / "checkpoints")
    shutil.copy(tmp_path / "straight" / "checkpoints" / "iter_4.pth", tmp_path / "cut" / "checkpoints")
    make(tmp_path, *over, wd="cut", resume=True).train()
    strip = lambda rs: [(r["iter"], r["loss"], r["lr"]) for r in rs if r["iter"] > 4]  # noqa
    assert strip(records(tmp_path / "straight", "train")) == strip(records(tmp_path / "cut", "train"))
    # the first record after the resume averages iterations 5 and 6 with iteration 4 from the checkpoint
    assert [r["iter"] for r in records(tmp_path / "cut", "train")] == [6, 8, 9, 12]


def test_how_often_it_validates_never_changes_training(tmp_path):
    # dropout and augmentation draw from the training streams; the evaluation draws from python,
    # numpy and torch generators too: it must run on streams of its own
    over = ["+model.dropout=0.3", "+model.eval_draws_random=true", "train.by=iter", "train.max_iters=12",
            "train.checkpoint_interval=12"]
    make(tmp_path, *over, "train.val_interval=1", wd="often").train()
    make(tmp_path, *over, "train.val_interval=100", wd="rarely").train()
    a = load_checkpoint(str(tmp_path / "often" / "checkpoints" / "iter_12.pth"))
    b = load_checkpoint(str(tmp_path / "rarely" / "checkpoints" / "iter_12.pth"))
    assert len(records(tmp_path / "often", "val")) == 12 and len(records(tmp_path / "rarely", "val")) == 1
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_best_checkpoint_follows_the_rule(tmp_path):
    for rule in ("greater", "less"):
        t = make(tmp_path, f"evaluation.rule={rule}", wd=rule)
        t.train()
        top1 = [r["top1"] for r in records(tmp_path / rule, "val")]
        best = max(top1) if rule == "greater" else min(top1)
        ckpt = [h for h in t.hooks if type(h).__name__ == "CheckpointHook"][0]
        assert ckpt.best_score == best
        saved = load_checkpoint(str(tmp_path / rule / "checkpoints" / "best.pth"))
        assert saved["meta"]["top1"] == best and saved["meta"]["iter"] == 8 * (top1.index(best) + 1)
        assert load_checkpoint(str(tmp_path / rule / "checkpoints" / "epoch_4.pth"))["hooks"]["checkpoint"][
            "best_score"] == best


def test_unknown_best_metric_names_the_computed_ones(tmp_path):
    with pytest.raises(ConfigError, match="evaluation.metric: 'top7'.*top1"):
        make(tmp_path, "evaluation.metric=top7", "train.max_epochs=1").train()


@HOOKS.register()
class PutsAScalar(Hook):
    def after_iter(self, trainer, losses):
        trainer.storage.put("my_scalar", trainer.iter * 2.0)


def test_default_hooks_replace_or_disable_and_storage_values_are_logged(tmp_path):
    t = make(tmp_path, "train.max_epochs=1", "default_hooks={plot: null, eval: null}",
             "custom_hooks=[{type: PutsAScalar, priority: 25}]")
    t.train()
    names = [type(h).__name__ for h in t.hooks]
    assert "PlotHook" not in names and "EvalHook" not in names and "PutsAScalar" in names
    assert not records(tmp_path / "wd", "val")
    # the logger (priority 30) reads what a hook of priority 25 put in the storage this iteration
    recs = records(tmp_path / "wd", "train")
    assert [r["my_scalar"] for r in recs] == [(2 + 4 + 6) / 3, (8 + 10 + 12) / 3, (14 + 16) / 2]
    t = make(tmp_path, "train.max_epochs=1", "default_hooks={checkpoint: {type: EventRecorder, priority: 70}}",
             wd="replaced")
    t.train()
    assert "CheckpointHook" not in [type(h).__name__ for h in t.hooks]
    assert not os.path.exists(tmp_path / "replaced" / "checkpoints" / "epoch_1.pth")
    with pytest.raises(ConfigError, match="default_hooks.chekpoint.*'checkpoint'"):
        make(tmp_path, "default_hooks={chekpoint: null}", wd="bad").train()


def test_checkpoint_of_the_first_format_still_resumes(tmp_path):
    """A checkpoint as the first engine wrote it (one optimizer/scheduler, best score in meta)."""
    over = ["train.max_epochs=3", "train.keep_checkpoints=0"]
    make(tmp_path, *over, wd="straight").train()
    new = load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "epoch_1.pth"))
    default = new["optimizers"]["default"]
    old = {"model": new["model"], "optimizer": default["optimizer"], "scheduler": default["scheduler"],
           "scaler": new["scaler"], "ema": None,
           "meta": {"epoch": 1, "iter": 8, "inner_iter": 0, "best_score": new["hooks"]["checkpoint"]["best_score"],
                    "best_metric": "top1", "world_size": 1, "torchcv": "0.1.0", "torch": torch.__version__},
           "rng": new["rng"], "config": new["config"]}
    os.makedirs(tmp_path / "old" / "checkpoints")
    torch.save(old, tmp_path / "old" / "checkpoints" / "epoch_1.pth")
    t = make(tmp_path, *over, wd="old", resume=True)
    t.train()
    a = load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "epoch_3.pth"))
    b = load_checkpoint(str(tmp_path / "old" / "checkpoints" / "epoch_3.pth"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert b["format"] == 2 and a["hooks"]["checkpoint"]["best_score"] == b["hooks"]["checkpoint"]["best_score"]
    assert t.optims["default"].updates == 24
