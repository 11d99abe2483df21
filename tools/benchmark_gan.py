#!/usr/bin/env python
"""Training speed of the ``gan`` task through our Trainer vs a plain hand-written loop in the
reference implementation's style (junyanz/pytorch-CycleGAN-and-pix2pix ``optimize_parameters``) with
the same networks, losses, data, batch size, optimizers and number of iterations, in the same process.

    python tools/benchmark_gan.py [--config configs/gan/shapes/pix2pix_shapes.yaml] [--iters 60]
        [--repeats 5] [--out benchmarks/gan_cpu.md] [key=value ...]

Each repeat runs the plain loop and the trainer one after the other (so drift hits both) and reports
iterations/s of the plain loop, of the trainer's *step path* (first batch to the last optimizer
step, timed like the plain loop: data reading with per-sample seeded streams, the optimizer
wrappers, hooks, logging, metrics.jsonl, TensorBoard) and of *everything* (``Trainer.train()`` from
start to end: building the data, model and writers, and the end-of-run checkpoint). The medians and
the ratios ours/plain are printed (1.0 = no overhead). Validation is off.

The plain loops (``pix2pix_iteration``, ``cyclegan_iteration``) are also what tests/test_gan_train.py
compares the task with, bit for bit.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torchcv  # noqa: E402,F401
from torchcv.config import load_config  # noqa: E402
from torchcv.engine.hooks import Hook  # noqa: E402
from torchcv.engine.optim import build_lr_scheduler  # noqa: E402
from torchcv.engine.trainer import Trainer  # noqa: E402
from torchcv.registry import HOOKS, MODELS, TASKS  # noqa: E402
from torchcv.tasks.image_pool import ImagePool  # noqa: E402
from torchcv.utils.rng import derive_seed  # noqa: E402


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


def pix2pix_iteration(m, opt_G, opt_D, real_A, real_B) -> None:
    """The reference's Pix2PixModel.optimize_parameters, written out."""
    fake_B = m.netG(real_A)
    set_requires_grad([m.netD], True)
    opt_D.zero_grad()
    fake_AB = torch.cat((real_A, fake_B), 1)
    loss_D_fake = m.criterion(m.netD(fake_AB.detach()), False)
    loss_D_real = m.criterion(m.netD(torch.cat((real_A, real_B), 1)), True)
    ((loss_D_fake + loss_D_real) * 0.5).backward()
    opt_D.step()
    set_requires_grad([m.netD], False)
    opt_G.zero_grad()
    loss_G_GAN = m.criterion(m.netD(fake_AB), True)
    loss_G_L1 = F.l1_loss(fake_B, real_B) * m.lambda_L1
    (loss_G_GAN + loss_G_L1).backward()
    opt_G.step()


def cyclegan_iteration(m, opt_G, opt_D, real_A, real_B, pool_A=None, pool_B=None) -> None:
    """The reference's CycleGANModel.optimize_parameters, written out."""
    fake_B = m.netG_A(real_A)
    rec_A = m.netG_B(fake_B)
    fake_A = m.netG_B(real_B)
    rec_B = m.netG_A(fake_A)
    set_requires_grad([m.netD_A, m.netD_B], False)
    opt_G.zero_grad()
    lam_idt, lam_A, lam_B = m.lambda_identity, m.lambda_A, m.lambda_B
    loss_idt_A = F.l1_loss(m.netG_A(real_B), real_B) * lam_B * lam_idt
    loss_idt_B = F.l1_loss(m.netG_B(real_A), real_A) * lam_A * lam_idt
    loss_G_A = m.criterion(m.netD_A(fake_B), True)
    loss_G_B = m.criterion(m.netD_B(fake_A), True)
    loss_cycle_A = F.l1_loss(rec_A, real_A) * lam_A
    loss_cycle_B = F.l1_loss(rec_B, real_B) * lam_B
    (loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B).backward()
    opt_G.step()
    set_requires_grad([m.netD_A, m.netD_B], True)
    opt_D.zero_grad()
    for netD, real, fake, pool in ((m.netD_A, real_B, fake_B, pool_B), (m.netD_B, real_A, fake_A, pool_A)):
        fake = pool.query(fake) if pool is not None else fake
        loss_real = m.criterion(netD(real), True)
        loss_fake = m.criterion(netD(fake.detach()), False)
        ((loss_real + loss_fake) * 0.5).backward()
    opt_D.step()


def adam(params, cfg):
    return torch.optim.Adam(params, lr=cfg["lr"], betas=tuple(cfg.get("betas", (0.9, 0.999))))


def plain_setup(model, cfg):
    """Adam per network group, as the reference builds them; pools seeded as the task seeds them."""
    opt = cfg["optimizer"]
    if hasattr(model, "netG_A"):
        opt_G = adam(list(model.netG_A.parameters()) + list(model.netG_B.parameters()), opt["G"])
        opt_D = adam(list(model.netD_A.parameters()) + list(model.netD_B.parameters()), opt["D"])
        size = cfg["gan"]["pool_size"]
        pools = {"pool_B": ImagePool(size, derive_seed(cfg["seed"], 7103, 0)),
                 "pool_A": ImagePool(size, derive_seed(cfg["seed"], 7103, 1))}
        return opt_G, opt_D, lambda a, b: cyclegan_iteration(model, opt_G, opt_D, a, b, **pools)
    opt_G, opt_D = adam(model.netG.parameters(), opt["G"]), adam(model.netD.parameters(), opt["D"])
    return opt_G, opt_D, lambda a, b: pix2pix_iteration(model, opt_G, opt_D, a, b)


def plain_loop(cfg, iters: int) -> float:
    """Iterations/s of a hand-written loop: DataLoader, networks, Adam, per-iteration LR, reference order."""
    torch.manual_seed(0)
    task = TASKS.get(cfg["task"])(cfg)
    dataset = task.build_dataset("train")
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg["data"]["batch_size"], shuffle=True, drop_last=True,
                                         num_workers=cfg["data"]["num_workers"], collate_fn=task.collate)
    model = MODELS.build(cfg["model"])
    model.train()
    opt_G, opt_D, step = plain_setup(model, cfg)
    scheds = [build_lr_scheduler(o, cfg["lr_schedule"], iters, len(loader), False) for o in (opt_G, opt_D)]
    it = 0
    t0 = time.perf_counter()
    while it < iters:
        for inputs, _, _ in loader:
            for s in scheds:
                s.step(it)
            step(inputs["A"], inputs["B"])
            it += 1
            if it == iters:
                break
    return iters / (time.perf_counter() - t0)


@HOOKS.register()
class GanStepPathTimer(Hook):
    """Runs first at every event: the time from the start of the loop to the end of the last step."""

    priority = 0

    def before_run(self, trainer):
        self.start = self.end = time.perf_counter()

    def after_iter(self, trainer, losses):
        self.end = time.perf_counter()


def ours(cfg, iters: int):
    """(iterations/s of the whole run, iterations/s of the step path)."""
    torch.manual_seed(0)
    cfg = type(cfg)(cfg, custom_hooks=[{"type": "GanStepPathTimer"}])
    with tempfile.TemporaryDirectory() as wd:
        trainer = Trainer(cfg, wd)
        t0 = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - t0
        timer = next(h for h in trainer.hooks if isinstance(h, GanStepPathTimer))
    return iters / elapsed, iters / (timer.end - timer.start)


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"load {load:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/gan/shapes/pix2pix_shapes.yaml")
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None, help="append a markdown row to this file")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    over = ["train.by=iter", f"train.max_iters={a.iters}", "+data.val=null", "data.test=null", "train.plot=false",
            "train.log_interval=20", f"train.checkpoint_interval={a.iters}", "custom_hooks=[]"] + a.overrides
    cfg = load_config(a.config, over)
    if not os.path.isdir(cfg["data"]["root"]):
        kind = "unpaired" if "Unpaired" in cfg["data"]["train"]["type"] else "paired"
        subprocess.check_call([sys.executable, "datasets/generate_shapes_gan.py", "--kind", kind, "--out",
                               cfg["data"]["root"]])
    logging.getLogger("torchcv").setLevel(logging.WARNING)
    plain_runs, our_runs, step_runs = [], [], []
    for r in range(a.repeats):
        plain_runs.append(plain_loop(cfg, a.iters))
        whole, step = ours(cfg, a.iters)
        our_runs.append(whole)
        step_runs.append(step)
        print(f"repeat {r + 1}: plain {plain_runs[-1]:.3f} it/s   ours, step path {step_runs[-1]:.3f} it/s   "
              f"ours, everything {our_runs[-1]:.3f} it/s", flush=True)
    p, o, st = statistics.median(plain_runs), statistics.median(our_runs), statistics.median(step_runs)
    desc = (f"{cfg['model']['type']} {cfg['model']['generator'].get('arch')} ngf {cfg['model']['generator'].get('ngf')}, "
            f"batch {cfg['data']['batch_size']}, {a.iters} iterations x {a.repeats} repeats")
    print(f"\n{desc}\nplain loop: {p:.3f} it/s\ntorchcv trainer, step path: {st:.3f} it/s   ratio ours/plain "
          f"{st / p:.3f}\ntorchcv trainer, everything: {o:.3f} it/s   ratio ours/plain {o / p:.3f}\n"
          f"machine: {machine()}")
    if a.out:
        new = not os.path.exists(a.out)
        with open(a.out, "a") as f:
            if new:
                f.write("| model / setting | plain loop it/s | torchcv it/s (ratio), step path | torchcv it/s (ratio), "
                        "everything | machine |\n|---|---|---|---|---|\n")
            f.write(f"| {desc} | {p:.3f} | {st:.3f} ({st / p:.3f}) | {o:.3f} ({o / p:.3f}) | {machine()} |\n")


if __name__ == "__main__":
    main()
