"""Several named optimizers stepped by the task in turn (a discriminator every iteration, a
generator every other iteration): each moves only its own parameters; clipping, accumulation, LR
schedules and AMP apply per optimizer; every LR is logged; resume is bit-exact, including a
half-finished accumulation window and the task's own state."""
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

from toy_parts import TOY_GAN_CONFIG, write_config


def make(tmp_path, *over, wd="wd", **kw):
    cfg = load_config(write_config(tmp_path, TOY_GAN_CONFIG, "gan.yaml"), list(over))
    return Trainer(cfg, str(tmp_path / wd), **kw)


@HOOKS.register()
class ParamWatcher(Hook):
    """Which of netG / netD changed in each iteration."""

    def __init__(self):
        self.changed = []

    def _snap(self, trainer):
        m = getattr(trainer.model, "module", trainer.model)
        return {n: p.detach().clone() for n, p in m.named_parameters()}

    def before_iter(self, trainer):
        self.before = self._snap(trainer)

    def after_iter(self, trainer, losses):
        after = self._snap(trainer)
        moved = {n.split(".")[0] for n in after if not torch.equal(after[n], self.before[n])}
        self.changed.append((trainer.iter - 1, "netG" in moved, "netD" in moved))


def test_each_optimizer_moves_only_its_parameters_with_its_own_steps(tmp_path):
    t = make(tmp_path, "custom_hooks=[{type: ParamWatcher}]")
    t.train()
    watcher = [h for h in t.hooks if isinstance(h, ParamWatcher)][0]
    # G is updated on iterations 0, 2, 4 ... and accumulates 2 updates per step: it steps on 2, 6, 10
    assert [(i, g) for i, g, _ in watcher.changed if g] == [(2, True), (6, True), (10, True)]
    assert all(d for _, _, d in watcher.changed)
    g, d = t.optims["G"], t.optims["D"]
    assert (g.steps, g.updates, d.steps, d.updates) == (3, 6, 12, 12)
    assert int(g.optimizer.state[g.params[0]]["step"]) == 3  # Adam's own step count
    # parameters by module prefix: exactly netG.* / netD.*
    assert {id(p) for p in g.params} == {id(p) for p in t.model.netG.parameters()}
    assert {id(p) for p in d.params} == {id(p) for p in t.model.netD.parameters()}


def test_clipping_lr_schedules_and_logging_are_per_optimizer(tmp_path):
    make(tmp_path).train()
    with open(tmp_path / "wd" / "metrics.jsonl") as f:
        recs = [json.loads(line) for line in f if '"train"' in line]
    assert all("lr/G" in r and "lr/D" in r for r in recs)
    assert all(r["lr/D"] == pytest.approx(0.1) for r in recs)
    # linear_decay: LR held until iteration 4, then linearly to 0 at 12 (the record of iteration 10
    # shows the LR of iteration index 9)
    by_iter = {r["iter"]: r for r in recs}
    assert by_iter[4]["lr/G"] == pytest.approx(0.01)
    assert by_iter[10]["lr/G"] == pytest.approx(0.01 * (1 - (9 - 4) / 8))
    # G clips (grad_clip 0.05): its pre-clip norm is logged in the windows where it stepped; D does not clip
    assert any("grad_norm/G" in r for r in recs) and not any("grad_norm/D" in r for r in recs)
    assert all(r["grad_norm/G"] > 0.05 for r in recs if "grad_norm/G" in r)
    assert {"loss_D", "loss_G", "loss"} <= set(recs[0])


def test_bf16_autocast_reaches_both_steps(tmp_path):
    t = make(tmp_path, "train.amp=bf16", "train.max_iters=4")
    t.train()
    seen = t.model.seen
    assert [s[0] for s in seen] == ["D", "G", "D", "D", "G", "D"]
    assert all(s[1] is True and s[2] == torch.bfloat16 for s in seen)


def test_resume_from_mid_window_checkpoint_is_bit_exact(tmp_path):
    make(tmp_path, wd="straight").train()
    # iteration 6: G has 3 updates, one into its second accumulation window (pending gradients)
    mid = load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "iter_6.pth"))
    assert mid["optimizers"]["G"]["updates"] == 3 and mid["optimizers"]["G"]["pending_grads"] is not None
    assert mid["optimizers"]["D"]["pending_grads"] is None
    assert mid["task"]["calls"] == 6 and len(mid["task"]["pool"]) == 3
    os.makedirs(tmp_path / "cut" / "checkpoints")
    shutil.copy(tmp_path / "straight" / "checkpoints" / "iter_6.pth", tmp_path / "cut" / "checkpoints")
    make(tmp_path, wd="cut", resume=True).train()
    a = load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "iter_12.pth"))
    b = load_checkpoint(str(tmp_path / "cut" / "checkpoints" / "iter_12.pth"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for name in ("G", "D"):
        sa, sb = a["optimizers"][name]["optimizer"]["state"], b["optimizers"][name]["optimizer"]["state"]
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (name, i, k)
        assert a["optimizers"][name]["updates"] == b["optimizers"][name]["updates"]
    assert a["task"]["calls"] == b["task"]["calls"] == 12
    assert all(torch.equal(x, y) for x, y in zip(a["task"]["pool"], b["task"]["pool"]))


def test_parameter_selection_errors(tmp_path):
    # 'net' is a prefix of the names netG/netD but not a module: never matched by substring
    with pytest.raises(ConfigError, match="optimizer.G.params: 'net' is not a module"):
        make(tmp_path, "optimizer.G.params=net").train()
    with pytest.raises(ConfigError, match="selected by both 'G' and 'D'"):
        make(tmp_path, "optimizer.G.params=[netG, netD]").train()
    with pytest.raises(ConfigError, match="belong to no optimizer.*netG"):
        make(tmp_path, "optimizer={D: {type: SGD, lr: 0.1, params: netD}}", "lr_schedule={policy: constant}").train()
    with pytest.raises(ConfigError, match="lr_schedule names schedules per optimizer but not for \\['D'\\]"):
        make(tmp_path, "lr_schedule={G: {policy: constant}}")
    with pytest.raises(ConfigError, match="optimizer.D.lr=-0.1: must be >= 0"):
        make(tmp_path, "optimizer.D.lr=-0.1")
    # the default train_step steps every optimizer after one backward; the rest-taker takes netG
    t = make(tmp_path, "task=classification", "optimizer={G: {type: SGD, lr: 0.1}, D: {type: Adam, lr: 0.01, "
             "params: netD}}", "lr_schedule={policy: constant}", "train.max_iters=2", wd="joint")
    t.train()
    assert t.optims["G"].steps == 2 and t.optims["D"].steps == 2
    assert {id(p) for p in t.optims["G"].params} == {id(p) for p in t.model.netG.parameters()}
