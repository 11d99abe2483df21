"""The gan task through the trainer: the reference's step order with frozen discriminators (bit for
bit equal to a hand-written loop), losses and LRs logged by name, a SIGKILLed run resumed to the
same weights, optimizer states and image pools, and the run scripts' train / val / test."""
import importlib.util
import json
import os
import signal
import subprocess
import textwrap
import time

import cv2
import pytest
import torch

from torchcv.config import load_config
from torchcv.engine.checkpoint import load_checkpoint
from torchcv.engine.hooks import Hook
from torchcv.engine.trainer import Trainer
from torchcv.registry import HOOKS

from conftest import PY, ROOT, run
from gan_parts import CYCLE_CONFIG, CYCLE_TINY, P2P_CONFIG, P2P_TINY, paired_data, unpaired_data  # noqa: F401


_TOOLS = {}


def tool(name):
    """A tools/ script as a module, loaded once (its hooks register once)."""
    if name not in _TOOLS:
        spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _TOOLS[name] = mod
    return _TOOLS[name]


@HOOKS.register()
class StepRecorder(Hook):
    """After each backward: which optimizer, whether any discriminator parameter may get gradients,
    and which networks got gradients from this backward (gradients stay after a step until that
    optimizer's next backward, so "got" means new or changed since the previous backward)."""

    def __init__(self):
        self.events = []
        self.seen = {}

    def _fresh(self, module):
        fresh = False
        for p in module.parameters():
            g, before = p.grad, self.seen.get(id(p))
            if g is not None and (before is None or not torch.equal(g, before)):
                fresh = True
            self.seen[id(p)] = None if g is None else g.detach().clone()
        return fresh

    def after_backward(self, trainer, optim):
        net = trainer.model
        d_names = net.discriminator_names
        trainable = any(p.requires_grad for n in d_names for p in getattr(net, n).parameters())
        has_grad = {n: self._fresh(m) for n, m in net.named_children() if n.startswith("net")}
        self.events.append((trainer.iter, optim.name, trainable, has_grad))


def trainer(tmp_path, config, data, *over, wd="wd"):
    cfg = load_config(config, [f"data.root={data}", *(P2P_TINY if config == P2P_CONFIG else CYCLE_TINY), *over])
    return Trainer(cfg, str(tmp_path / wd))


def test_pix2pix_steps_d_then_g_with_d_frozen(tmp_path, paired_data):  # noqa: F811
    t = trainer(tmp_path, P2P_CONFIG, paired_data, "train.max_iters=2", "custom_hooks=[{type: StepRecorder}]")
    t.train()
    events = next(h for h in t.hooks if isinstance(h, StepRecorder)).events
    assert [(i, name) for i, name, *_ in events] == [(0, "D"), (0, "G"), (1, "D"), (1, "G")]
    for _, name, d_trainable, grads in events:
        if name == "D":  # the fake is detached: no gradient reaches G
            assert d_trainable and grads == {"netG": False, "netD": True}
        else:            # D frozen: its parameters get no gradient while G learns to fool it
            assert not d_trainable and grads == {"netG": True, "netD": False}
    assert all(p.requires_grad for p in t.model.netD.parameters())  # unfrozen afterwards
    recs = [json.loads(line) for line in open(tmp_path / "wd" / "metrics.jsonl")]
    train = [r for r in recs if r["mode"] == "train"]
    assert {"loss_D_real", "loss_D_fake", "loss_G_GAN", "loss_G_L1", "lr/G", "lr/D"} <= set(train[0])
    val = [r for r in recs if r["mode"] == "val"][-1]
    assert {"L1", "PSNR", "SSIM", "mean_image_L1", "mean_image_PSNR", "FID", "KID", "acc"} <= set(val)


def test_cyclegan_steps_g_then_d_through_the_pools(tmp_path, unpaired_data):  # noqa: F811
    t = trainer(tmp_path, CYCLE_CONFIG, unpaired_data, "train.max_iters=3", "gan.pool_size=2",
                "custom_hooks=[{type: StepRecorder}]")
    t.train()
    events = next(h for h in t.hooks if isinstance(h, StepRecorder)).events
    assert [(i, name) for i, name, *_ in events] == [(0, "G"), (0, "D"), (1, "G"), (1, "D"), (2, "G"), (2, "D")]
    g, d = events[0], events[1]
    assert not g[2] and g[3] == {"netG_A": True, "netG_B": True, "netD_A": False, "netD_B": False}
    assert d[2] and d[3] == {"netG_A": False, "netG_B": False, "netD_A": True, "netD_B": True}
    assert [len(p) for p in t.task.pools.values()] == [2, 2]  # 3 iterations x batch 2, pools of 2
    recs = [json.loads(line) for line in open(tmp_path / "wd" / "metrics.jsonl")]
    train = [r for r in recs if r["mode"] == "train"]
    assert {"loss_G_A", "loss_G_B", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B", "loss_D_A",
            "loss_D_B", "lr/G", "lr/D"} <= set(train[0])
    val = [r for r in recs if r["mode"] == "val"][-1]
    assert {"cycle_L1", "cycle_L1_A", "cycle_L1_B", "acc", "acc_BtoA", "FID", "FID_BtoA", "L1", "L1_BtoA"} <= set(val)


@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_task_equals_the_hand_written_reference_loop_bit_for_bit(tmp_path, paired_data, unpaired_data, kind):  # noqa: F811
    """Same initial networks and batches: our task through the trainer and the reference's
    optimize_parameters written out (tools/benchmark_gan.py) end with identical weights."""
    bench = tool("benchmark_gan")
    config, data = (P2P_CONFIG, paired_data) if kind == "pix2pix" else (CYCLE_CONFIG, unpaired_data)
    over = ["train.max_iters=3", "lr_schedule={policy: constant}", "model.generator.dropout=false", "gan.pool_size=2",
            "data.val=null"]
    ours = trainer(tmp_path, config, data, *over, wd="ours")
    ours.train()
    ref = trainer(tmp_path, config, data, *over, wd="ref")
    ref.setup_train()  # the same initial weights and data pipeline, without training
    ref._position_loader()
    model = ref.model
    _, _, step = bench.plain_setup(model, ref.cfg)
    for i, (inputs, _, _) in enumerate(ref.train_loader):
        if i == 3:
            break
        step(inputs["A"], inputs["B"])
    a, b = ours.model.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


PAUSE = """
import time
from torchcv.engine.hooks import Hook
from torchcv.registry import HOOKS

@HOOKS.register()
class PauseAfter(Hook):
    priority = 80  # after the checkpoint hook
    def __init__(self, iteration):
        self.iteration = iteration
    def after_iter(self, trainer, losses):
        if trainer.iter == self.iteration:
            print("PAUSED", flush=True)
            time.sleep(600)
"""


def test_sigkill_and_resume_give_the_same_networks_optimizers_and_pools(tmp_path, unpaired_data):  # noqa: F811
    """8 iterations straight vs 4, SIGKILL, resume to 8 (pools of 3 fakes: they fill and swap)."""
    (tmp_path / "pause.py").write_text(textwrap.dedent(PAUSE))
    args = [PY, "tools/train.py", CYCLE_CONFIG, f"data.root={unpaired_data}", *CYCLE_TINY, "train.max_iters=8",
            "train.checkpoint_interval=4", "train.val_interval=100", "gan.pool_size=3", "+data.val=null",
            "train.keep_checkpoints=0"]
    one_thread = {"OMP_NUM_THREADS": "1"}  # the same float reductions in all three processes
    run(args + ["--work-dir", str(tmp_path / "straight")], env=one_thread)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TORCHCV_NO_PROGRESS="1", **one_thread)
    proc = subprocess.Popen(args + ["--work-dir", str(tmp_path / "cut"), f"custom_imports=[{tmp_path / 'pause.py'}]",
                                    "custom_hooks=[{type: PauseAfter, iteration: 4}]"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    seen = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if line.startswith("PAUSED") or (not line and proc.poll() is not None):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert any(line.startswith("PAUSED") for line in seen), "".join(seen)[-3000:]
    assert sorted(os.listdir(tmp_path / "cut" / "checkpoints")) == ["iter_4.pth", "last_checkpoint"]
    p = run(args + ["--work-dir", str(tmp_path / "cut"), "--resume"], env=one_thread)
    assert "resumed from" in p.stdout and "iter_4.pth" in p.stdout
    a = load_checkpoint(str(tmp_path / "straight" / "checkpoints" / "iter_8.pth"))
    b = load_checkpoint(str(tmp_path / "cut" / "checkpoints" / "iter_8.pth"))
    assert {k.split(".")[0] for k in a["model"]} == {"netG_A", "netG_B", "netD_A", "netD_B"}
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for name in ("G", "D"):
        sa, sb = a["optimizers"][name]["optimizer"]["state"], b["optimizers"][name]["optimizer"]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (name, i, k)
    pools_a, pools_b = a["task"]["pools"], b["task"]["pools"]
    assert set(pools_a) == {"fake_B", "fake_A"}
    for name in pools_a:
        assert len(pools_a[name]["images"]) == 3
        assert all(torch.equal(x, y) for x, y in zip(pools_a[name]["images"], pools_b[name]["images"]))
        assert torch.equal(pools_a[name]["generator"], pools_b[name]["generator"])
    mid = load_checkpoint(str(tmp_path / "cut" / "checkpoints" / "iter_4.pth"))
    assert all(len(mid["task"]["pools"][n]["images"]) == 3 for n in ("fake_A", "fake_B"))  # kept at the kill

    def losses(wd):
        recs = [json.loads(line) for line in open(wd / "metrics.jsonl")]
        return [(r["iter"], r["loss_G_A"], r["loss_D_A"], r["lr/G"]) for r in recs if r["mode"] == "train"]
    assert losses(tmp_path / "straight") == losses(tmp_path / "cut")


def test_run_script_train_val_test_and_the_pictures(tmp_path, paired_data):  # noqa: F811
    env = {"WORK_ROOT": str(tmp_path), "TORCHCV_GAN_SHAPES_PAIRED": paired_data}
    over = [*P2P_TINY, "train.max_iters=4", "train.val_interval=4", "train.plot=true"]
    script = "scripts/gan/shapes/run_pix2pix_shapes.sh"
    run(["bash", script, "train", "t", *over], env=env)
    wd = tmp_path / "gan" / "shapes" / "pix2pix" / "t"
    assert os.path.isfile(wd / "plots" / "translations.png") and os.path.isfile(wd / "checkpoints" / "best.pth")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(wd / "tensorboard")).Reload()
    assert "val/translations" in events.Tags()["images"] and "train/lr/G" in events.Tags()["scalars"]
    # val and test as the run script runs them (tools/test.py), in this process
    from torchcv.cli import test_main
    ckpt = str(wd / "checkpoints" / "best.pth")
    over += [f"data.root={paired_data}"]
    assert test_main([P2P_CONFIG, ckpt, "--work-dir", str(wd), "--split", "val", *over]) == 0
    assert json.load(open(wd / "metrics_val.json"))["PSNR"] > 0
    assert test_main([P2P_CONFIG, ckpt, "--work-dir", str(wd), "--split", "test", "--out-dir", str(wd / "test"),
                      *over]) == 0
    written = sorted(os.listdir(wd / "test" / "fake_B"))
    assert written == sorted(os.listdir(os.path.join(paired_data, "test")))  # every test image, translated
    assert cv2.imread(str(wd / "test" / "fake_B" / written[0])).shape == (32, 32, 3)
    metrics = json.load(open(wd / "test" / "metrics_test.json"))
    assert {"L1", "PSNR", "SSIM", "FID", "KID", "acc"} <= set(metrics)


def test_demo_and_browse(tmp_path, paired_data, unpaired_data):  # noqa: F811
    from torchcv.registry import TASKS
    for config, data, images in ((P2P_CONFIG, paired_data, os.path.join(paired_data, "test")),
                                 (CYCLE_CONFIG, unpaired_data, os.path.join(unpaired_data, "testA"))):
        over = [f"data.root={data}", *(P2P_TINY if config == P2P_CONFIG else CYCLE_TINY)]
        cfg = load_config(config, over)
        torch.save(TASKS.get("gan")(cfg).build_model().state_dict(), tmp_path / "w.pth")
        out = tmp_path / f"demo_{os.path.basename(data)}"
        assert tool("demo").main([config, str(tmp_path / "w.pth"), images, "--out-dir", str(out), *over]) == 0
        pngs = sorted(os.listdir(out))
        assert len(pngs) == len(os.listdir(images))
        picture = cv2.imread(str(out / pngs[0]))
        # input | translation (aligned files give their A half), CycleGAN adds the reconstruction
        assert picture.shape == (32, (32 + 2) * (2 if config == P2P_CONFIG else 3) - 2, 3)
        browse = tmp_path / f"browse_{os.path.basename(data)}"
        assert tool("browse_dataset").main([config, "--num", "3", "--out-dir", str(browse), *over]) == 0
        assert cv2.imread(str(browse / "train_0000.png")).shape == (32, 66, 3)  # A | B
