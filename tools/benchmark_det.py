#!/usr/bin/env python
"""Our two-stage detectors vs torchvision's: same weights, same inputs, same process.

    python tools/benchmark_det.py [--model fasterrcnn_resnet50_fpn|maskrcnn_resnet50_fpn|keypointrcnn_resnet50_fpn]
        [--size 512] [--batch 2] [--repeats 5] [--warmup 1] [--device cpu]

Measures one training iteration (forward + backward + SGD step, batch ``--batch`` of
``--size`` x ``--size`` images, model min_size = max_size = size so no internal rescale) and
inference on the same batch. Ours and torchvision's alternate within each repeat, so a change of
machine load hits both; the median is reported with ratio ours / torchvision (<= 1.0: ours is no
slower). Peak memory: CUDA max_memory_allocated per phase, or on CPU the growth of the process's
peak RSS during each phase (an upper bound, order dependent).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--num-classes", type=int, default=None, help="default: 91 (2 for keypointrcnn)")
    ap.add_argument("--model", default="fasterrcnn_resnet50_fpn",
                    choices=["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"])
    a = ap.parse_args(argv)
    from torchvision.models import detection as tvd

    from torchcv import ops
    from torchcv.registry import MODELS

    dev = torch.device(a.device)
    torch.manual_seed(0)
    kw = dict(min_size=a.size, max_size=a.size)
    if a.num_classes is None:
        a.num_classes = 2 if a.model.startswith("keypoint") else 91
    tv = getattr(tvd, a.model)(weights=None, weights_backbone=None, num_classes=a.num_classes,
                                trainable_backbone_layers=3, **kw)
    ours = MODELS.get(a.model)(num_classes=a.num_classes, trainable_layers=3, norm="frozen_bn", **kw)
    # torchvision freezes BN only when pretrained; freeze it here too so both train the same thing
    from torchcv.models.backbones.features import _freeze_bn
    _freeze_bn(tv.backbone.body)
    ours.load_state_dict(tv.state_dict())
    tv.to(dev)
    ours.to(dev)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, a.size, a.size, generator=g).to(dev) for _ in range(a.batch)]
    targets = []
    for _ in range(a.batch):
        xy = torch.rand(6, 2, generator=g) * a.size * 0.6
        wh = 20 + torch.rand(6, 2, generator=g) * a.size * 0.35
        t = {"boxes": torch.cat([xy, xy + wh], 1).to(dev),
             "labels": torch.randint(1, a.num_classes, (6,), generator=g).to(dev)}
        if a.model.startswith("mask"):
            masks = torch.zeros(6, a.size, a.size, dtype=torch.uint8)
            for k, (x0, y0, x1, y1) in enumerate(t["boxes"].long().tolist()):
                masks[k, y0:y1, x0:x1] = 1
            t["masks"] = masks.to(dev)
        if a.model.startswith("keypoint"):  # 17 keypoints inside each box, all visible
            rel = torch.rand(6, 17, 2, generator=g)
            kp = xy[:, None] + rel * wh[:, None]
            t["keypoints"] = torch.cat([kp, torch.full((6, 17, 1), 2.0)], 2).to(dev)
        targets.append(t)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_step(model, opt):
        model.train()
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer(model):
        model.eval()
        model(images)

    opts = {id(m): torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
            for m in (ours, tv)}
    times = {(n, phase): [] for n in ("ours", "torchvision") for phase in ("train", "infer")}
    mem = {}
    models = {"ours": ours, "torchvision": tv}
    for phase in ("train", "infer"):
        for r in range(a.warmup + a.repeats):
            for name in (("ours", "torchvision") if r % 2 == 0 else ("torchvision", "ours")):
                m = models[name]
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                before = _rss_mb()
                sync()
                t0 = time.perf_counter()
                train_step(m, opts[id(m)]) if phase == "train" else infer(m)
                sync()
                dt = time.perf_counter() - t0
                if r >= a.warmup:
                    times[(name, phase)].append(dt)
                peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _rss_mb() - before
                mem[(name, phase)] = max(mem.get((name, phase), 0.0), peak)
    print(f"device {dev} ({torch.get_num_threads()} threads), ops backend {ops.backend()}, torch {torch.__version__}")
    print(f"{a.model}, batch {a.batch}, {a.size}x{a.size}, median of {a.repeats} (warm-up {a.warmup})")
    print(f"{'phase':<8}{'ours s':>10}{'tv s':>10}{'ratio':>8}{'ours MB':>10}{'tv MB':>10}")
    for phase in ("train", "infer"):
        o = statistics.median(times[("ours", phase)])
        t = statistics.median(times[("torchvision", phase)])
        print(f"{phase:<8}{o:10.3f}{t:10.3f}{o / t:8.3f}{mem[('ours', phase)]:10.0f}{mem[('torchvision', phase)]:10.0f}")


if __name__ == "__main__":
    main()
