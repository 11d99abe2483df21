#!/usr/bin/env python
"""Benchmark: training and inference images/s of classification architectures next to references
(ShuffleNetV2 x1.0 and ResNet-18 by default), in one process on identical inputs.

    python tools/benchmark_cls_models.py [--archs shufflenet_v1_g3_x1_0 dfnet_v1 ...]
        [--refs shufflenet_v2_x1_0 resnet18] [--size 224] [--batch 8] [--repeats 7] [--warmup 2]
        [--out benchmarks/cls_models_cpu.md]

A training step = train-mode forward + cross-entropy + backward + SGD step (momentum 0.9); inference =
eval-mode forward under ``torch.inference_mode``. In every repeat each model runs once, in turn (A B C
... A B C ...), so background load on a shared machine hits all of them alike; the median over the
repeats is reported, with the ratio to each reference (> 1.0: more images/s than the reference).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torchvision  # noqa: E402

import torchcv  # noqa: E402,F401
from torchcv.registry import ARCHS  # noqa: E402

DEFAULT_ARCHS = ["shufflenet_v1_g3_x1_0", "shufflenet_v1_g8_x1_0", "dfnet_v1", "dfnet_v2"]
DEFAULT_REFS = ["shufflenet_v2_x1_0", "resnet18"]


def count_macs(net: torch.nn.Module, size: int) -> int:
    total = 0

    def hook(m, _inputs, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was = net.training
    net.eval()
    with torch.inference_mode():
        net(torch.zeros(1, 3, size, size))
    net.train(was)
    for h in handles:
        h.remove()
    return total


def train_step(net, opt, x, t) -> None:
    loss = F.cross_entropy(net(x), t)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def infer(net, x) -> None:
    with torch.inference_mode():
        net(x)


def bench(names, size: int, batch: int, repeats: int, warmup: int, num_classes: int = 1000):
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    t = torch.randint(0, num_classes, (batch,))
    nets = {n: ARCHS.get(n)(num_classes=num_classes) for n in names}
    opts = {n: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for n, m in nets.items()}
    times = {"train": {n: [] for n in names}, "infer": {n: [] for n in names}}
    for mode in ("train", "infer"):
        for net in nets.values():
            net.train(mode == "train")
        for i in range(warmup + repeats):
            for n, net in nets.items():
                t0 = time.perf_counter()
                if mode == "train":
                    train_step(net, opts[n], x, t)
                else:
                    infer(net, x)
                if i >= warmup:
                    times[mode][n].append(time.perf_counter() - t0)
    ips = {mode: {n: batch / statistics.median(v) for n, v in per.items()} for mode, per in times.items()}
    info = {n: (sum(p.numel() for p in m.parameters()), count_macs(m, 224)) for n, m in nets.items()}
    return ips, times, info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS)
    p.add_argument("--refs", nargs="+", default=DEFAULT_REFS)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="also append a markdown report here")
    a = p.parse_args(argv)
    names = list(dict.fromkeys(a.archs + a.refs))
    load_before = os.getloadavg()[0]
    ips, times, info = bench(names, a.size, a.batch, a.repeats, a.warmup)
    load_after = os.getloadavg()[0]
    header = (f"| arch | params | MMACs (224 px) | train img/s | inference img/s | "
              + " | ".join(f"train / {r} | infer / {r}" for r in a.refs) + " |")
    lines = [
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, {torch.get_num_threads()} thread(s), "
        f"load average {load_before:.1f} before / {load_after:.1f} after",
        f"batch {a.batch} x 3 x {a.size} x {a.size}, 1000 classes, {a.warmup} warm-up + {a.repeats} interleaved "
        f"repeats, median",
        "",
        header,
        "|" + "---|" * (5 + 2 * len(a.refs)),
    ]
    for n in names:
        params, macs = info[n]
        ratios = " | ".join(f"{ips['train'][n] / ips['train'][r]:.2f} | {ips['infer'][n] / ips['infer'][r]:.2f}"
                            for r in a.refs)
        lines.append(f"| {n} | {params / 1e6:.2f}M | {macs / 1e6:.0f} | {ips['train'][n]:.1f} | "
                     f"{ips['infer'][n]:.1f} | {ratios} |")
    lines.append("")
    for mode in ("train", "infer"):
        for n in names:
            lines.append(f"{mode} {n}: " + ", ".join(f"{s * 1e3:.0f}" for s in times[mode][n]) + " ms")
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "a") as f:
            f.write("\n`python tools/benchmark_cls_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
                    + "`\n\n" + text + "\n")


if __name__ == "__main__":
    main()
