"""Trainer features in-process: optimizer groups, LR schedules, AMP, accumulation, EMA, clipping,
custom hooks, non-finite losses."""
import math
import os

import pytest
import torch
from torch import nn

from torchcv.config import load_config
from torchcv.engine.checkpoint import load_checkpoint
from torchcv.engine.hooks import Hook
from torchcv.engine.optim import LRScheduler, build_optimizer
from torchcv.engine.trainer import Trainer
from torchcv.registry import HOOKS, ConfigError

from conftest import CLS_FAST

CONFIG = "configs/cls/shapes/resnet18_shapes.yaml"


def make_trainer(tmp_path, data, *over, name="wd"):
    cfg = load_config(CONFIG, CLS_FAST + [f"data.root={data}", "train.max_epochs=1", "train.plot=false", *over])
    return Trainer(cfg, str(tmp_path / name))


def test_param_groups_no_decay_on_norm_and_bias():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    opt = build_optimizer(m, {"type": "SGD", "lr": 0.1, "weight_decay": 1e-4, "norm_decay": 0.0, "bias_decay": 0.0,
                              "paramwise": [{"pattern": r"^2\.", "lr_mult": 10.0}]})
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(m[0].weight)]["weight_decay"] == 1e-4 and by_param[id(m[0].bias)]["weight_decay"] == 0.0
    assert by_param[id(m[1].weight)]["weight_decay"] == 0.0
    assert by_param[id(m[2].weight)]["lr"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="Adam"):
        build_optimizer(m, {"type": "Adamm", "lr": 0.1})


def lrs(policy, total=100, per_epoch=10, by_epoch=True, **kw):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = LRScheduler(opt, total, per_epoch, by_epoch, policy=policy, **kw)
    out = []
    for it in range(total + 1):
        s.step(it)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_lr_schedules():
    w = lrs("constant", warmup_iters=10, warmup_ratio=0.1)
    assert w[0] == pytest.approx(0.1) and w[5] == pytest.approx(0.55) and w[10] == 1.0
    s = lrs("multistep", milestones=[3, 6])  # epochs
    assert s[29] == 1.0 and s[30] == pytest.approx(0.1) and s[60] == pytest.approx(0.01)
    assert lrs("step", step_size=2)[20] == pytest.approx(0.1)
    c = lrs("cosine")
    assert c[50] == pytest.approx(0.5) and c[100] == pytest.approx(0.0, abs=1e-12)
    p = lrs("poly", power=0.9, by_epoch=False)
    assert p[50] == pytest.approx(0.5 ** 0.9)
    with pytest.raises(ConfigError, match="cosine"):
        lrs("cosin")


def test_bf16_amp_accumulation_clipping_and_ema(tmp_path, shapes_cls):
    t = make_trainer(tmp_path, shapes_cls, "train.amp=bf16", "train.accumulate=2", "train.grad_clip=1.0",
                     "train.ema=0.9")
    metrics = t.train()
    assert 0.0 <= metrics["top1"] <= 1.0
    ck = load_checkpoint(os.path.join(tmp_path, "wd", "checkpoints", "epoch_1.pth"))
    assert ck["ema"] is not None
    differs = any(not torch.equal(ck["ema"][k], ck["model"][k]) for k in ck["model"] if k.endswith("weight"))
    assert differs
    # 7 iterations with accumulate=2 -> optimizer steps at 2, 4, 6 and the last iteration
    assert ck["optimizer"]["state"][0]["exp_avg"].abs().sum() > 0


def test_fp16_on_cpu_is_a_clear_error(tmp_path, shapes_cls):
    with pytest.raises(ConfigError, match="bf16"):
        make_trainer(tmp_path, shapes_cls, "train.amp=fp16")


@HOOKS.register()
class PoisonAfterFirstEpoch(Hook):
    """Test hook: makes the loss NaN once the first epoch (and its checkpoint) is done."""

    def __init__(self, note: str = ""):
        self.calls = []

    def after_epoch(self, trainer):
        self.calls.append(trainer.epoch)
        with torch.no_grad():
            trainer.model.net.fc.weight.fill_(float("nan"))


def test_custom_hook_and_non_finite_loss(tmp_path, shapes_cls):
    t = make_trainer(tmp_path, shapes_cls, "train.max_epochs=3",
                     "custom_hooks=[{type: PoisonAfterFirstEpoch, priority: 80, note: x}]")
    with pytest.raises(FloatingPointError) as e:
        t.train()
    msg = str(e.value)
    assert "non-finite loss at iteration 8 (epoch 2)" in msg and "loss_cls=nan" in msg
    hook = [h for h in t.hooks if isinstance(h, PoisonAfterFirstEpoch)][0]
    assert hook.calls == [1] and hook.priority == 80
    ckpt_dir = tmp_path / "wd" / "checkpoints"
    assert (ckpt_dir / "last_checkpoint").read_text().strip() == "epoch_1.pth"
    good = load_checkpoint(str(ckpt_dir / "epoch_1.pth"))
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


def test_iteration_based_training_with_mid_epoch_checkpoints(tmp_path, shapes_cls):
    t = make_trainer(tmp_path, shapes_cls, "train.by=iter", "train.max_iters=10", "train.val_interval=5",
                     "train.checkpoint_interval=5", "lr_schedule.policy=poly", "+lr_schedule.power=0.9")
    t.train()
    ck = load_checkpoint(str(tmp_path / "wd" / "checkpoints" / "iter_10.pth"))
    assert ck["meta"]["iter"] == 10 and ck["meta"]["epoch"] == 1 and ck["meta"]["inner_iter"] == 3
    # the LR of the last iteration (index 9 of 10) under poly 0.9 from the config's 0.004
    assert math.isclose(t.current_lr(), 0.004 * (1 - 9 / 10) ** 0.9, rel_tol=1e-9)
