#!/usr/bin/env python
"""Inference latency on CPU: eager fp32, int8 (torch.ao static quantization) and onnxruntime, for a
classification, a segmentation and a detection model, in one process on identical inputs.

    OMP_NUM_THREADS=1 python tools/benchmark_infer.py [--repeats 7] [--warmup 2] [--threads 1]
        [--only cls,seg,det] [--out benchmarks/infer_cpu.md]

Every variant of a case runs once per repeat, in rotating order (load on a shared machine hits all
of them), after ``--warmup`` untimed rounds; the median is reported with the ratio to eager fp32
(> 1: faster than eager). Outputs are compared too (onnxruntime: max abs
difference; int8 accuracy is proven in tests/test_proofs_deploy.py). int8 covers the classification models only: torchvision has quantizable variants of
classification networks, not of segmentation or detection heads.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, x) -> float:
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def bench(variants, x, repeats: int, warmup: int):
    names = list(variants)
    for _ in range(warmup):
        for n in names:
            variants[n](x)
    times = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            times[n].append(timed(variants[n], x))
    return {n: statistics.median(v) for n, v in times.items()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="cls,seg,det")
    ap.add_argument("--out", default=None, help="write the markdown table here")
    a = ap.parse_args(argv)

    import torch
    import onnxruntime as ort

    import torchcv  # noqa: F401
    from torchcv.config import load_config
    from torchcv.deploy import quantization as Q
    from torchcv.deploy.export import eager_outputs, export
    from torchcv.models.classifiers.image_classifier import ImageClassifier
    from torchcv.registry import MODELS, TASKS

    torch.set_num_threads(a.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    tmp = tempfile.mkdtemp(prefix="torchcv_bench_")
    load_before = os.getloadavg()
    rows = []

    def onnx_runner(path):
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.numpy()})

    def add_rows(case, shape, result, checks):
        base = result["eager fp32"]
        for n, t in result.items():
            rows.append((case, shape, n, t * 1000, base / t, checks.get(n, "")))
            print(f"{case:38s} {shape:16s} {n:14s} {t * 1000:9.2f} ms  x{base / t:5.2f}  {checks.get(n, '')}",
                  flush=True)

    torch.manual_seed(0)
    if "cls" in a.only:
        for arch in ("resnet18", "mobilenet_v2"):
            fp32 = ImageClassifier(arch, 1000).eval()
            qnet = Q.quantizable_net(arch, 1000)
            qnet.load_state_dict(fp32.net.state_dict())
            Q.prepare_static(qnet, "x86")
            calib = torch.randn(4, 3, 224, 224)
            Q.calibrate(qnet, [calib[i:i + 1] for i in range(4)])
            int8 = Q.convert(qnet)
            path = export(fp32, "classification", "onnx", torch.randn(1, 3, 224, 224), os.path.join(tmp, f"{arch}.onnx"),
                          dynamic=True)
            run_onnx = onnx_runner(path)
            for batch in (1, 32):
                x = torch.randn(batch, 3, 224, 224)
                with torch.no_grad():
                    ref = fp32(x)
                diff = float((torch.from_numpy(run_onnx(x)[0]) - ref).abs().max())
                with torch.no_grad():
                    res = bench({"eager fp32": fp32, "int8": int8, "onnxruntime": run_onnx}, x, a.repeats, a.warmup)
                add_rows(f"classification {arch}", f"{batch}x3x224x224", res,
                         {"int8": "accuracy: PTQ/QAT proof", "onnxruntime": f"max diff {diff:.1e}"})
    if "seg" in a.only:
        seg = MODELS.get("lraspp_mobilenet_v3_large")(num_classes=21).eval()
        x = torch.randn(1, 3, 256, 256)
        path = export(seg, "segmentation", "onnx", x, os.path.join(tmp, "seg.onnx"))
        run_onnx = onnx_runner(path)
        with torch.no_grad():
            diff = float((torch.from_numpy(run_onnx(x)[0]) - seg(x)).abs().max())
            res = bench({"eager fp32": seg, "onnxruntime": run_onnx}, x, a.repeats, a.warmup)
        add_rows("segmentation lraspp_mobilenet_v3_large", "1x3x256x256", res, {"onnxruntime": f"max diff {diff:.1e}"})
    if "det" in a.only:
        cfg = load_config("configs/det/shapes/maskrcnn_shufflenet_fpn_shapes.yaml", ["model.min_size=320",
                                                                                   "model.max_size=320"])
        det = TASKS.get("detection")(cfg).build_model().eval()
        x = torch.rand(3, 320, 320)
        path = export(det, "detection", "onnx", x, os.path.join(tmp, "det.onnx"))
        run_onnx = onnx_runner(path)
        with torch.no_grad():
            n_eager = eager_outputs("detection", det, x)[0].shape[0]
            n_onnx = run_onnx(x)[0].shape[0]
            res = bench({"eager fp32": lambda im: det([im]), "onnxruntime": run_onnx}, x, a.repeats, a.warmup)
        add_rows("detection maskrcnn_shufflenet_fpn (light)", "3x320x320", res,
                 {"onnxruntime": f"{n_onnx} detections (eager {n_eager})"})
    load_after = os.getloadavg()
    if a.out:
        import torchvision

        lines = [
            "# Inference latency on CPU: eager fp32, int8 and onnxruntime",
            "",
            f"`OMP_NUM_THREADS={a.threads} python tools/benchmark_infer.py --repeats {a.repeats} --warmup {a.warmup}"
            f" --threads {a.threads}`",
            "",
            f"- Machine: {cpu_name()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}, onnxruntime {ort.__version__}; {a.threads} thread(s) for torch and "
            f"onnxruntime alike.",
            f"- Load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f} (the machine was shared: "
            f"absolute times are inflated; the variants of a case alternate inside each repeat, so the load "
            f"hits all of them).",
            "- Random weights (latency does not depend on them); int8 = x86 backend, static per-tensor "
            "activations, calibrated on 4 random images. int8 rows exist for classification only: torchvision has "
            "quantizable classification networks, not segmentation or detection ones.",
            "",
            "| model | input | variant | median (ms) | speed-up vs eager fp32 | check |",
            "|---|---|---|---:|---:|---|",
        ]
        lines += [f"| {c} | {s} | {n} | {t:.2f} | {r:.2f}x | {k} |" for c, s, n, t, r, k in rows]
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
