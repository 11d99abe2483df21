"""Engine parts with assertions that fail when the feature breaks: optimizer groups, LR schedules,
accumulation (step counts), clipping (the applied norm), EMA arithmetic, autocast inside forward and
not in backward, non-finite losses, iteration mode."""
import math
import os

import pytest
import torch
from torch import nn

from torchcv.config import load_config
from torchcv.engine.checkpoint import load_checkpoint
from torchcv.engine.ema import ModelEMA
from torchcv.engine.hooks import Hook
from torchcv.engine.optim import LRScheduler, OptimWrapper, build_optimizer
from torchcv.engine.trainer import Trainer
from torchcv.registry import HOOKS, ConfigError
from torchcv.utils.errors import NonFiniteLossError

from toy_parts import TOY_CONFIG, write_config


def make(tmp_path, *over, wd="wd"):
    cfg = load_config(write_config(tmp_path, TOY_CONFIG), list(over))
    return Trainer(cfg, str(tmp_path / wd))


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
    with pytest.raises(ConfigError, match=r"optimizer: Invalid beta parameter"):
        build_optimizer(m, {"type": "Adam", "lr": 0.1, "betas": [1.5, 0.9]})


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
    d = lrs("linear_decay", decay_start=6)  # epochs: hold 60 iterations, then linear to 0 at 100
    assert d[0] == d[60] == 1.0 and d[70] == pytest.approx(0.75) and d[100] == 0.0
    with pytest.raises(ConfigError, match="cosine"):
        lrs("cosin")
    with pytest.raises(ConfigError, match="decay_start"):
        lrs("linear_decay")


def wrapper(model, lr=1.0, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = LRScheduler(opt, 100, 10, False, policy="constant")
    return OptimWrapper("default", opt, sched, torch.amp.GradScaler("cpu", enabled=False), list(model.parameters()),
                        **kw)


def test_accumulation_steps_every_n_updates_and_flushes_at_the_end():
    torch.manual_seed(0)
    m = nn.Linear(3, 1)
    w = wrapper(m, accumulate=3)
    stepped = []
    for i in range(8):
        w.final_iteration = i == 7
        before = m.weight.detach().clone()
        w.update(m(torch.randn(4, 3)).pow(2).mean())
        stepped.append(not torch.equal(before, m.weight))
    assert stepped == [False, False, True, False, False, True, False, True]
    assert w.steps == 3 and w.updates == 8


def test_accumulated_step_equals_one_big_batch():
    torch.manual_seed(0)
    x = torch.randn(6, 3)
    a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    wa, wb = wrapper(a, lr=0.1, accumulate=2), wrapper(b, lr=0.1)
    for half in (x[:3], x[3:]):
        wa.update(a(half).pow(2).mean())
    wb.update(b(x).pow(2).mean())
    torch.testing.assert_close(a.weight, b.weight)


def test_clipping_applies_exactly_the_max_norm():
    m = nn.Linear(4, 1, bias=False)
    nn.init.constant_(m.weight, 1.0)
    w = wrapper(m, lr=1.0, grad_clip=0.5)
    before = m.weight.detach().clone()
    w.update((m(torch.full((2, 4), 10.0)) ** 2).mean())  # every gradient element is 800: norm 1600
    assert w.last_grad_norm == pytest.approx(1600.0)
    assert float((before - m.weight.detach()).norm()) == pytest.approx(0.5, rel=1e-5)  # SGD lr 1: the step is the gradient


def test_non_finite_loss_stops_before_the_backward():
    m = nn.Linear(2, 1)
    w = wrapper(m)
    with pytest.raises(NonFiniteLossError) as e:
        w.update({"loss_a": m(torch.ones(1, 2)).sum(), "loss_b": torch.tensor(float("nan"))})
    assert e.value.losses["loss_b"] != e.value.losses["loss_b"] and m.weight.grad is None


def test_ema_arithmetic_on_two_parameters():
    m = nn.Linear(1, 1)
    with torch.no_grad():
        m.weight.fill_(2.0), m.bias.fill_(-1.0)
    ema = ModelEMA(m, decay=0.75)
    with torch.no_grad():
        m.weight.fill_(6.0), m.bias.fill_(3.0)
    ema.update(m)
    assert float(ema.module.weight) == 0.75 * 2.0 + 0.25 * 6.0
    assert float(ema.module.bias) == 0.75 * -1.0 + 0.25 * 3.0
    ema.update(m)
    assert float(ema.module.weight) == 0.75 * 3.0 + 0.25 * 6.0
    # averaging one sub-module: the rest follows the live model
    net = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    ema = ModelEMA(net, decay=0.5, module="0")
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(3.0)
    ema.update(net)
    assert float(ema.module[0].weight) == 2.0 and float(ema.module[1].weight) == 3.0
    with pytest.raises(ConfigError, match="'2' is not a sub-module"):
        ModelEMA(net, 0.5, module="2")


class _RecordBackward(torch.autograd.Function):
    seen = []

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        _RecordBackward.seen.append(torch.is_autocast_enabled("cpu"))
        return g


@HOOKS.register()
class WrapsForwardForBackward(Hook):
    def before_run(self, trainer):
        fc2 = trainer.model.fc2
        fc2.register_forward_hook(lambda mod, inp, out: _RecordBackward.apply(out))


def test_bf16_autocast_inside_forward_not_in_backward_and_ema(tmp_path):
    _RecordBackward.seen.clear()
    t = make(tmp_path, "train.amp=bf16", "train.max_epochs=1", "train.ema=0.9",
             "custom_hooks=[{type: WrapsForwardForBackward}]")
    t.train()
    train_seen = t.model.seen[:8]  # 8 training iterations, then validation
    assert train_seen == [(True, torch.bfloat16)] * 8
    assert _RecordBackward.seen == [False] * 8
    ck = load_checkpoint(os.path.join(tmp_path, "wd", "checkpoints", "epoch_1.pth"))
    assert any(not torch.equal(ck["ema"][k], ck["model"][k]) for k in ck["model"])


def test_fp16_on_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="bf16"):
        make(tmp_path, "train.amp=fp16")


@HOOKS.register()
class PoisonAfterFirstEpoch(Hook):
    """Test hook: makes the loss NaN once the first epoch (and its checkpoint) is done."""

    def __init__(self, note: str = ""):
        self.calls = []

    def after_epoch(self, trainer):
        self.calls.append(trainer.epoch)
        with torch.no_grad():
            trainer.model.fc2.weight.fill_(float("nan"))


def test_custom_hook_and_non_finite_loss(tmp_path):
    t = make(tmp_path, "train.max_epochs=3", "custom_hooks=[{type: PoisonAfterFirstEpoch, priority: 80, note: x}]")
    with pytest.raises(FloatingPointError) as e:
        t.train()
    msg = str(e.value)
    assert "non-finite loss at iteration 9 (epoch 2)" in msg and "loss_cls=nan" in msg and "before the step" in msg
    hook = [h for h in t.hooks if isinstance(h, PoisonAfterFirstEpoch)][0]
    assert hook.calls == [1] and hook.priority == 80
    ckpt_dir = tmp_path / "wd" / "checkpoints"
    assert (ckpt_dir / "last_checkpoint").read_text().strip() == "epoch_1.pth"
    good = load_checkpoint(str(ckpt_dir / "epoch_1.pth"))
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


def test_iteration_based_training_with_mid_epoch_checkpoints(tmp_path):
    t = make(tmp_path, "train.by=iter", "train.max_iters=10", "train.val_interval=5", "train.checkpoint_interval=5",
             "lr_schedule.policy=poly", "+lr_schedule.power=0.9")
    t.train()
    ck = load_checkpoint(str(tmp_path / "wd" / "checkpoints" / "iter_10.pth"))
    assert ck["meta"]["iter"] == 10 and ck["meta"]["epoch"] == 1 and ck["meta"]["inner_iter"] == 2
    # the LR of the last iteration (index 9 of 10) under poly 0.9 from the config's 0.1
    assert math.isclose(t.current_lr(), 0.1 * (1 - 9 / 10) ** 0.9, rel_tol=1e-9)
