"""Benchmark torchcv.ops (compiled) against torchvision.ops on identical inputs.

    python tools/benchmark_ops.py            # full run, writes benchmarks/ops_cpu.md
    python tools/benchmark_ops.py --quick    # fewer repeats, smaller nms sizes skipped
    python tools/benchmark_ops.py --device cuda

Prints median times, ratio = torchvision_time / torchcv_time (> 1: torchcv is
faster) and whether the outputs (and gradients) are bit-identical.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torchcv.ops as ops  # noqa: E402
from torchcv.ops.poolers import LevelMapper  # noqa: E402

tvops = torchvision.ops


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def same(a, b):
    if isinstance(a, (list, tuple)):
        return all(same(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    return a.shape == b.shape and torch.equal(a.cpu(), b.cpu())


# ------------------------------------------------------------------- inputs
def rpn_like_boxes(n, g, image=(800, 1088), objects=60):
    """Clustered proposals: jittered boxes around a few objects plus background clutter."""
    h, w = image
    centers = torch.rand(objects, 2, generator=g) * torch.tensor([w, h])
    sizes = torch.exp(torch.rand(objects, 2, generator=g) * 3.2 + 3.0)  # ~20 .. 500 px
    k = torch.randint(0, objects, (n,), generator=g)
    c = centers[k] + torch.randn(n, 2, generator=g) * sizes[k] * 0.15
    s = sizes[k] * torch.exp(torch.randn(n, 2, generator=g) * 0.2)
    boxes = torch.cat([c - s / 2, c + s / 2], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    scores = torch.rand(n, generator=g)
    return boxes, scores


def fpn_features(g, batch=2, channels=256, image=(800, 1088), device="cpu", channels_last=False):
    feats = {}
    for i, stride in enumerate((4, 8, 16, 32)):
        f = torch.randn(batch, channels, image[0] // stride, image[1] // stride, generator=g)
        if channels_last:
            f = f.contiguous(memory_format=torch.channels_last)
        feats[str(i)] = f.to(device)
    return feats


def proposals(g, per_image, batch=2, image=(800, 1088), device="cpu"):
    return [rpn_like_boxes(per_image, g, image)[0].to(device) for _ in range(batch)]


class MultiScaleRoIPool(torch.nn.Module):
    """roi_pool over FPN levels with the same level mapping as MultiScaleRoIAlign."""

    def __init__(self, fn, output_size):
        super().__init__()
        self.fn = fn
        self.output_size = output_size

    def forward(self, feats, boxes, image_shapes):
        xs = list(feats.values())
        scales = [xs[i].shape[-2] / image_shapes[0][0] for i in range(len(xs))]
        scales = [2.0 ** round(torch.tensor(s).log2().item()) for s in scales]
        k_min, k_max = int(-torch.tensor(scales[0]).log2()), int(-torch.tensor(scales[-1]).log2())
        levels = LevelMapper(k_min, k_max)(boxes)
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])
        out = torch.zeros(rois.size(0), xs[0].size(1), *self.output_size, dtype=xs[0].dtype, device=xs[0].device)
        for lvl, (x, s) in enumerate(zip(xs, scales)):
            idx = torch.where(levels == lvl)[0]
            out[idx] = self.fn(x, rois[idx], self.output_size, s)
        return out


# ------------------------------------------------------------------- cases
def bench_nms(device, n, warmup, repeats, g):
    boxes, scores = rpn_like_boxes(n, g)
    boxes, scores = boxes.to(device), scores.to(device)
    a = ops.nms(boxes, scores, 0.7)
    b = tvops.nms(boxes, scores, 0.7)
    t_ours = timeit(lambda: ops.nms(boxes, scores, 0.7), device, warmup, repeats)
    t_tv = timeit(lambda: tvops.nms(boxes, scores, 0.7), device, warmup, repeats)
    return f"nms {n // 1000}k RPN-like boxes, IoU 0.7 (kept {a.numel()})", t_ours, t_tv, same(a, b)


def bench_batched_nms(device, warmup, repeats, g):
    n = 20_000
    boxes, scores = rpn_like_boxes(n, g)
    idxs = torch.randint(0, 80, (n,), generator=g)
    boxes, scores, idxs = boxes.to(device), scores.to(device), idxs.to(device)
    a = ops.batched_nms(boxes, scores, idxs, 0.5)
    b = tvops.batched_nms(boxes, scores, idxs, 0.5)
    t_ours = timeit(lambda: ops.batched_nms(boxes, scores, idxs, 0.5), device, warmup, repeats)
    t_tv = timeit(lambda: tvops.batched_nms(boxes, scores, idxs, 0.5), device, warmup, repeats)
    return f"batched_nms 20k boxes, 80 classes (kept {a.numel()})", t_ours, t_tv, same(a, b)


def bench_pooler(device, name, ours, ref, per_image, warmup, repeats, g, backward, channels_last=False):
    image_shapes = [(800, 1088)] * 2
    feats = fpn_features(g, device=device, channels_last=channels_last)
    boxes = proposals(g, per_image, device=device)
    out_shape = None

    def run(pool, with_grad):
        nonlocal out_shape
        if not with_grad:
            with torch.no_grad():
                return pool(feats, boxes, image_shapes), None
        fs = {k: v.detach().requires_grad_() for k, v in feats.items()}
        out = pool(fs, boxes, image_shapes)
        out_shape = out.shape
        grads = torch.autograd.grad(out, list(fs.values()), grad_out)
        return out, grads

    with torch.no_grad():
        probe = ours(feats, boxes, image_shapes)
    grad_out = torch.randn(probe.shape, generator=g).to(device)
    a_out, a_g = run(ours, backward)
    b_out, b_g = run(ref, backward)
    ok = same(a_out, b_out) and (not backward or same(list(a_g), list(b_g)))
    t_ours = timeit(lambda: run(ours, backward), device, warmup, repeats)
    t_tv = timeit(lambda: run(ref, backward), device, warmup, repeats)
    return name, t_ours, t_tv, ok


def machine_description(device):
    lines = []
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lines.append(f"- CPU: {model}, nproc={nproc}, torch threads={torch.get_num_threads()}")
    lines.append(f"- torch {torch.__version__}, torchvision {torchvision.__version__}, Python {platform.python_version()}")
    lines.append(f"- torchcv.ops backend: {ops.backend()}")
    try:
        la = os.getloadavg()
        lines.append(f"- load average at start: {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} (other jobs share the CPU when > nproc)")
    except OSError:
        pass
    if device.type == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name(device)}")
    return "\n".join(lines)


def run_device(device, quick):
    g = torch.Generator().manual_seed(0)
    warmup, repeats = (1, 3) if quick else (2, 7)
    rows = []
    sizes = (1000, 5000, 20000)
    for n in sizes:
        rows.append(bench_nms(device, n, warmup, repeats, g))
        print(fmt_row(rows[-1]), flush=True)
    rows.append(bench_batched_nms(device, warmup, repeats, g))
    print(fmt_row(rows[-1]), flush=True)
    rw, rr = (1, 2) if quick else (1, 5)
    box_ours = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    box_ref = tvops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    mask_ours = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2)
    mask_ref = tvops.MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2)
    pool_ours = MultiScaleRoIPool(lambda x, r, o, s: ops.roi_pool(x, r, o, s), (7, 7))
    pool_ref = MultiScaleRoIPool(lambda x, r, o, s: tvops.roi_pool(x, r, o, s), (7, 7))
    cases = [
        ("roi_align box head 7x7, fwd", box_ours, box_ref, 512, False, False),
        ("roi_align box head 7x7, fwd+bwd", box_ours, box_ref, 512, True, False),
        ("roi_align box head 7x7, fwd+bwd, channels_last", box_ours, box_ref, 512, True, True),
        ("roi_align mask head 14x14 (128 rois/img), fwd", mask_ours, mask_ref, 128, False, False),
        ("roi_align mask head 14x14 (128 rois/img), fwd+bwd", mask_ours, mask_ref, 128, True, False),
        ("roi_pool box head 7x7, fwd", pool_ours, pool_ref, 512, False, False),
        ("roi_pool box head 7x7, fwd+bwd", pool_ours, pool_ref, 512, True, False),
    ]
    for name, o, r, per_image, bwd, cl in cases:
        rows.append(bench_pooler(device, name, o, r, per_image, rw, rr, g, bwd, cl))
        print(fmt_row(rows[-1]), flush=True)
    return rows


def fmt_row(row):
    name, t_ours, t_tv, ok = row
    return f"| {name} | {t_ours * 1e3:.2f} | {t_tv * 1e3:.2f} | {t_tv / t_ours:.2f}x | {'yes' if ok else 'NO'} |"


HEADER = "| case | torchcv (ms) | torchvision (ms) | ratio (tv / ours) | identical |\n|---|---:|---:|---:|:---:|"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats (fast smoke run)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "all"])
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "ops_{device}.md"),
                   help="markdown output ({device} is substituted); '-' to skip writing")
    args = p.parse_args()
    if ops.backend() != "compiled":
        print("warning: torchcv._C is not built; both columns measure torchvision (run bash extensions/make.sh)")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            print("CUDA not available; skipping the CUDA benchmark")
            continue
        device = torch.device(dev)
        print(f"\n## {dev}\n{machine_description(device)}\n\n{HEADER}", flush=True)
        rows = run_device(device, args.quick)
        if args.out != "-":
            path = args.out.format(device=dev)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(f"# torchcv.ops vs torchvision.ops ({dev})\n\n")
                f.write("Generated by `python tools/benchmark_ops.py" + (" --quick" if args.quick else "") + "`. ")
                f.write("Median wall time per call; ratio = torchvision / torchcv (> 1 means torchcv is faster); ")
                f.write("'identical' = outputs (and input gradients for fwd+bwd) are bit-identical.\n\n")
                f.write(machine_description(device) + "\n\n")
                f.write("Inputs: RPN-like clustered boxes on an 800x1088 image; FPN features for batch 2, 256 channels, ")
                f.write("200x272 / 100x136 / 50x68 / 25x34 (strides 4-32), 512 proposals per image (mask head: 128), ")
                f.write("sampling_ratio=2, level mapping as MultiScaleRoIAlign (roi_pool uses the same mapping).\n\n")
                f.write(HEADER + "\n")
                for row in rows:
                    f.write(fmt_row(row) + "\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
