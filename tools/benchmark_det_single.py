#!/usr/bin/env python
"""Our single-stage detectors vs torchvision's: same weights, same inputs, same process.

    python tools/benchmark_det_single.py [--models retinanet ssdlite fcos] [--size 320] [--batch 2]
        [--repeats 5] [--warmup 1] [--device cpu] [--ours-kw channels_last=true ...]

For each model: one training iteration (forward + backward + SGD step on a batch of ``--batch``
random ``--size`` x ``--size`` images with 6 random boxes each) and inference on the same batch.
RetinaNet and FCOS get min_size = max_size = size (no internal rescale), frozen BatchNorm and
trainable_backbone_layers 3 in both models (torchvision's setting with pretrained weights);
SSDlite resizes to its fixed 320 x 320 and trains its BatchNorms, as torchvision's. Ours and
torchvision's alternate within each repeat, so a change of machine load hits both; the median is
reported with the ratio ours / torchvision (<= 1.0: ours is no slower).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parse_kw(items):
    import yaml
    out = {}
    for item in items or []:
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def build_pair(name: str, size: int, num_classes: int, ours_kw: dict):
    """(torchvision model, ours) with identical weights."""
    from torchvision.models import detection as tvd

    from torchcv.models.backbones.features import _freeze_bn
    from torchcv.models.detectors.retinanet import fcos_resnet50_fpn, retinanet_resnet50_fpn
    from torchcv.models.detectors.ssd import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    if name in ("retinanet", "fcos"):
        kw = dict(min_size=size, max_size=size)
        tv_build = tvd.retinanet_resnet50_fpn if name == "retinanet" else tvd.fcos_resnet50_fpn
        tv = tv_build(weights=None, weights_backbone=None, num_classes=num_classes, **kw)
        # torchvision freezes BN and conv1 + layer1 (trainable_backbone_layers=3) only when pretrained
        # weights are given: do the same here, so both models train the same parameters
        _freeze_bn(tv.backbone.body)
        for pname, p in tv.backbone.body.named_parameters():
            if not pname.startswith(("layer2", "layer3", "layer4")):
                p.requires_grad_(False)
        ours_build = retinanet_resnet50_fpn if name == "retinanet" else fcos_resnet50_fpn
        ours = ours_build(num_classes=num_classes, trainable_layers=3, norm="frozen_bn", **kw, **ours_kw)
    elif name == "ssdlite":
        tv = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        ours = ssdlite320_mobilenet_v3_large(num_classes=num_classes, **ours_kw)
    else:
        raise SystemExit(f"unknown model {name}: use retinanet, ssdlite, fcos")
    ours.load_state_dict(tv.state_dict())
    trainable = [{n for n, p in m.named_parameters() if p.requires_grad} for m in (tv, ours)]
    if trainable[0] != trainable[1]:
        raise SystemExit(f"{name}: the models train different parameters: {sorted(trainable[0] ^ trainable[1])[:5]}")
    return tv, ours


def bench(name: str, a) -> None:
    from torchcv import ops

    dev = torch.device(a.device)
    tv, ours = build_pair(name, a.size, a.num_classes, _parse_kw(a.ours_kw))
    tv.to(dev)
    ours.to(dev)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, a.size, a.size, generator=g).to(dev) for _ in range(a.batch)]
    targets = []
    for _ in range(a.batch):
        xy = torch.rand(6, 2, generator=g) * a.size * 0.6
        wh = 20 + torch.rand(6, 2, generator=g) * a.size * 0.35
        targets.append({"boxes": torch.cat([xy, xy + wh], 1).to(dev),
                        "labels": torch.randint(1, a.num_classes, (6,), generator=g).to(dev)})

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

    models = {"ours": ours, "torchvision": tv}
    opts = {k: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-5, momentum=0.9)
            for k, m in models.items()}
    times = {(n, ph): [] for n in models for ph in ("train", "infer")}
    for phase in ("train", "infer"):
        for r in range(a.warmup + a.repeats):
            for n in (("ours", "torchvision") if r % 2 == 0 else ("torchvision", "ours")):
                sync()
                t0 = time.perf_counter()
                train_step(models[n], opts[n]) if phase == "train" else infer(models[n])
                sync()
                if r >= a.warmup:
                    times[(n, phase)].append(time.perf_counter() - t0)
    print(f"{name}: batch {a.batch}, {a.size}x{a.size} inputs, median of {a.repeats} (warm-up {a.warmup}); "
          f"device {dev} ({torch.get_num_threads()} threads), ops {ops.backend()}, torch {torch.__version__}")
    print(f"  {'phase':<8}{'ours s':>10}{'tv s':>10}{'ratio':>8}")
    for phase in ("train", "infer"):
        o = statistics.median(times[("ours", phase)])
        t = statistics.median(times[("torchvision", phase)])
        print(f"  {phase:<8}{o:10.3f}{t:10.3f}{o / t:8.3f}")
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["retinanet", "ssdlite", "fcos"])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--num-classes", type=int, default=91)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ours-kw", nargs="*", help="constructor overrides of our models, e.g. channels_last=true")
    a = ap.parse_args(argv)
    for name in a.models:
        bench(name, a)


if __name__ == "__main__":
    main()
