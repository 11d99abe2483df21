#!/usr/bin/env python
"""Benchmark: our deeplabv3_resnet50 training step vs torchvision's, same weights, same inputs, same
process; and the throughput of mIoU evaluation (confusion-matrix accumulation).

    python tools/benchmark_seg.py [--size 128] [--batch 2] [--repeats 7] [--warmup 2] [--out benchmarks/seg_cpu.md]

A training step = forward in train mode + cross-entropy on out (+0.5 x aux, ignore 255) + backward +
SGD step. Steps of the two models are interleaved (A B A B ...) so a noisy, shared machine slows
both alike; the median of the repeats is reported, and the ratio ours / torchvision (<= 1.0 means
ours is no slower).
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
from torchcv.evaluation.segmentation import SegEvaluator  # noqa: E402
from torchcv.models.segmentors.tv_compat import load_torchvision_weights  # noqa: E402
from torchcv.registry import MODELS  # noqa: E402


def tv_step(model, opt, x, t):
    out = model(x)
    loss = F.cross_entropy(out["out"], t, ignore_index=255) + 0.5 * F.cross_entropy(out["aux"], t, ignore_index=255)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def our_step(model, opt, x, t):
    losses = model(x, t)
    loss = sum(losses.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def bench_train(size: int, batch: int, repeats: int, warmup: int, num_classes: int = 21):
    torch.manual_seed(0)
    tv = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                            num_classes=num_classes, aux_loss=True)
    ours = MODELS.get("deeplabv3_resnet50")(num_classes=num_classes)
    load_torchvision_weights(ours, tv.state_dict())
    x = torch.randn(batch, 3, size, size)
    t = torch.randint(0, num_classes, (batch, size, size))
    t[:, :4] = 255
    tv.train(), ours.train()
    opt_tv = torch.optim.SGD(tv.parameters(), lr=1e-3, momentum=0.9)
    opt_our = torch.optim.SGD(ours.parameters(), lr=1e-3, momentum=0.9)
    # same weights, same input: the first losses agree (dropout aside: both use the same RNG draw)
    torch.manual_seed(1)
    l_tv = tv_step(tv, opt_tv, x, t)
    torch.manual_seed(1)
    l_our = our_step(ours, opt_our, x, t)
    times = {"torchvision": [], "torchcv": []}
    for i in range(warmup + repeats):
        for name, fn, m, o in (("torchvision", tv_step, tv, opt_tv), ("torchcv", our_step, ours, opt_our)):
            t0 = time.perf_counter()
            fn(m, o, x, t)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return med, times, (l_tv, l_our)


def bench_eval(num_classes: int = 21, size: int = 512, batch: int = 4, repeats: int = 5):
    class DS:
        pass
    ds = DS()
    ds.num_classes, ds.classes, ds.palette = num_classes, [str(i) for i in range(num_classes)], None
    logits = torch.randn(batch, num_classes, size, size)
    target = torch.randint(0, num_classes, (batch, size, size))
    metas = [{"path": f"{i}.jpg"} for i in range(batch)]
    ev = SegEvaluator(ds)
    ev.process(logits, target, metas)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ev.process(logits, target, metas)
        ts.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ev.compute()
    compute_s = time.perf_counter() - t0
    med = statistics.median(ts)
    return batch / med, batch * size * size / med / 1e6, compute_s


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="also write a markdown report here")
    a = p.parse_args(argv)
    med, times, (l_tv, l_our) = bench_train(a.size, a.batch, a.repeats, a.warmup)
    ratio = med["torchcv"] / med["torchvision"]
    ips, mpix, compute_s = bench_eval()
    lines = [
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        f"deeplabv3_resnet50 training step, batch {a.batch} x 3 x {a.size} x {a.size}, 21 classes, "
        f"{a.warmup} warm-up + {a.repeats} interleaved repeats:",
        f"  first-step loss: torchvision {l_tv:.5f}, torchcv {l_our:.5f}",
        f"  torchvision median {med['torchvision'] * 1e3:.0f} ms  (all: {', '.join(f'{t * 1e3:.0f}' for t in times['torchvision'])})",
        f"  torchcv     median {med['torchcv'] * 1e3:.0f} ms  (all: {', '.join(f'{t * 1e3:.0f}' for t in times['torchcv'])})",
        f"  ratio torchcv / torchvision = {ratio:.3f}  ({'no slower' if ratio <= 1.0 else 'SLOWER'})",
        f"mIoU evaluation (SegEvaluator.process: argmax + bincount confusion matrix), 21 classes, 4 x 512 x 512 logits:",
        f"  {ips:.1f} images/s = {mpix:.1f} Mpixel/s; compute() {compute_s * 1e3:.2f} ms",
    ]
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            f.write("# Segmentation benchmark (CPU)\n\nCommand: `python tools/benchmark_seg.py "
                    + " ".join(argv if argv is not None else sys.argv[1:]) + "`\n\n```\n" + text + "\n```\n")


if __name__ == "__main__":
    main()
