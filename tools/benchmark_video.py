#!/usr/bin/env python
"""Video classification speed: clip reading, dataset throughput and the training step, ours against
the reference in the same process on identical inputs (alternating, warm-up first, medians).

    python tools/benchmark_video.py [--data data/shapes_video] [--workers 0 1 2] [--repeats 5]
        [--archs r3d_18 mc3_18 r2plus1d_18] [--batch 4] [--steps 3] [--out benchmarks/video_cpu.md]

1. Decoders: milliseconds per clip for the same clips read by ``read_frames`` with OpenCV, with PyAV
   (when installed) and from extracted frame folders (JPEG).
2. Dataset: clips/s of our loader (``VideoFolderDataset`` + ``SampleReader`` + DataLoader, with
   transforms and collation) with N workers, against a plain OpenCV loop (VideoCapture, seek,
   read, BGR->RGB) over the same clips in this process.
3. Training step: seconds per step of ``VideoClassifier`` through the video task's ``train_step``
   and the trainer's optimizer wrapper, against torchvision's model with ``F.cross_entropy`` and a
   bare SGD step, same weights and clips; ratio ours / torchvision (1.0 = same speed).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

import torchcv  # noqa: E402,F401
from torchcv.data.loading import DropMissing, SampleReader  # noqa: E402
from torchcv.data.video_io import read_frames  # noqa: E402
from torchcv.engine.optim import build_optim_wrappers, named_optimizer_cfgs  # noqa: E402
from torchcv.registry import DATASETS, MODELS, TASKS  # noqa: E402

KINETICS_NORM = {"type": "Normalize", "mean": [0.43216, 0.394666, 0.37645], "std": [0.22803, 0.22145, 0.216989]}


def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"OpenCV {cv2.__version__}, load average {load:.2f}")


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---- 1 + 2: reading ---------------------------------------------------------------------------------
def plain_opencv_clip(path: str, start: int, count: int) -> np.ndarray:
    """What one writes by hand: open, seek, read ``count`` frames, BGR -> RGB."""
    cap = cv2.VideoCapture(path)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(count):
        ok, img = cap.read()
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def bench_reading(root: str, frames: int, workers_list, repeats: int, lines: list) -> None:
    ds = DATASETS.build({"type": "VideoFolderDataset", "root": root, "frames_per_clip": frames, "clips_per_video": 3,
                         "sampling": "uniform",
                         "transforms": [{"type": "CenterCrop", "size": 56}, {"type": "ToFloat"}, KINETICS_NORM]})
    clips = [(ds.videos[v].path, ds.videos[v].clip_frames(c, frames)) for v, c in ds.items]
    n = len(clips)
    # 1. decoders on the same clips
    results = {}
    results["opencv"] = median_time(lambda: [read_frames(p, ids, "opencv") for p, ids in clips], repeats)
    try:
        import av  # noqa: F401
        results["pyav"] = median_time(lambda: [read_frames(p, ids, "pyav") for p, ids in clips], repeats)
    except ImportError:
        lines.append("PyAV is not installed: pip install av to compare it")
    tmp = tempfile.mkdtemp()
    try:
        from datasets.extract_frames import extract
        folders = {}
        for p, _ in clips:
            if p not in folders:
                dst = os.path.join(tmp, os.path.relpath(os.path.splitext(p)[0], root))
                extract((p, dst, 90, None))
                folders[p] = dst
        results["frame folders (JPEG q90)"] = median_time(
            lambda: [read_frames(folders[p], ids) for p, ids in clips], repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines.append(f"\n### Clip decoding ({n} clips of {frames} frames, "
                 f"{ds.videos[0].size[1]}x{ds.videos[0].size[0]} mp4v, one process)")
    lines.append("| reader | ms per clip | clips/s | vs OpenCV |\n|---|---|---|---|")
    for name, t in results.items():
        lines.append(f"| {name} | {1000 * t / n:.2f} | {n / t:.0f} | {results['opencv'] / t:.2f}x |")
    # 2. the dataset against a plain loop over the same clips
    plain = median_time(lambda: [plain_opencv_clip(p, ids[0], frames) for p, ids in clips], repeats)
    task = TASKS.get("video")({"data": {}})
    lines.append(f"\n### Dataset throughput vs a plain OpenCV loop ({n} clips, batch 8; ours adds CenterCrop, "
                 f"ToFloat, Normalize and collation)")
    lines.append("| reader | clips/s | ratio vs plain loop |\n|---|---|---|")
    lines.append(f"| plain OpenCV loop, 1 process | {n / plain:.0f} | 1.00 |")
    for w in workers_list:
        loader = torch.utils.data.DataLoader(SampleReader(ds, 0, True, train=False), batch_size=8, num_workers=w,
                                             collate_fn=DropMissing(task.collate))
        t = median_time(lambda: sum(len(b[2]) for b in loader), repeats)
        lines.append(f"| torchcv loader, {w} worker(s) | {n / t:.0f} | {plain / t:.2f} |")
    for line in lines[-(len(workers_list) + 3):]:
        print(line)


# ---- 3: training step -------------------------------------------------------------------------------
def bench_step(arch: str, batch: int, frames: int, size: int, steps: int, repeats: int) -> tuple:
    torch.manual_seed(0)
    cfg = {"type": "VideoClassifier", "arch": arch, "num_classes": 8}
    ours = MODELS.build(cfg)
    ref = getattr(torchvision.models.video, arch)(num_classes=8)
    ref.load_state_dict(ours.net.state_dict())
    ours.train(), ref.train()
    clips = torch.randn(batch, 3, frames, size, size)
    labels = torch.randint(0, 8, (batch,))
    task = TASKS.get("video")({"data": {}})
    optim_cfg = {"type": "SGD", "lr": 1e-4, "momentum": 0.9, "weight_decay": 1e-4}
    optims = build_optim_wrappers(ours, named_optimizer_cfgs(optim_cfg, {"policy": "constant"}),
                                  torch.amp.GradScaler("cpu", enabled=False), 10 ** 6, 100, False)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)

    def ours_steps():
        for _ in range(steps):
            optims.begin_iter(final=False)
            task.train_step(ours, (clips, labels, []), optims)
            optims.end_iter()

    def ref_steps():
        for _ in range(steps):
            loss = F.cross_entropy(ref(clips), labels)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()

    ours_steps(), ref_steps()  # warm-up
    t_ours, t_ref = [], []
    for r in range(repeats):  # alternate, so drift hits both alike
        for fn, out in ((ours_steps, t_ours), (ref_steps, t_ref)) if r % 2 == 0 else \
                ((ref_steps, t_ref), (ours_steps, t_ours)):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) / steps)
    return statistics.median(t_ours), statistics.median(t_ref)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/shapes_video")
    ap.add_argument("--split", default="val")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--archs", nargs="*", default=["r3d_18", "mc3_18", "r2plus1d_18"],
                    help="models of the training-step comparison (none: skip it)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--skip-reading", action="store_true")
    ap.add_argument("--out", default=None, help="append the markdown tables to this file")
    a = ap.parse_args()
    import logging
    logging.getLogger("torchcv").setLevel(logging.WARNING)
    if not os.path.isdir(a.data):
        subprocess.check_call([sys.executable, "datasets/generate_shapes_video.py", "--out", a.data])
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')}: {machine()}"]
    if not a.skip_reading:
        bench_reading(os.path.join(a.data, a.split), a.frames, a.workers, a.repeats, lines)
    if a.archs:
        lines.append(f"\n### Training step, batch {a.batch} x 3x{a.frames}x{a.size}x{a.size}, float32, SGD "
                     f"({a.steps} steps x {a.repeats} repeats, alternating)")
        lines.append("| model | torchvision s/step | torchcv s/step | ratio ours/torchvision |\n|---|---|---|---|")
    for arch in a.archs:
        t_ours, t_ref = bench_step(arch, a.batch, a.frames, a.size, a.steps, a.repeats)
        lines.append(f"| {arch} | {t_ref:.3f} | {t_ours:.3f} | {t_ours / t_ref:.3f} |")
        print(lines[-1], flush=True)
    lines.append(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print("\n".join(lines))
    if a.out:
        with open(a.out, "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
