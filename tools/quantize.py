#!/usr/bin/env python
"""Post-training static int8 quantization of a classification checkpoint (docs/deployment.md).

    python tools/quantize.py CONFIG CHECKPOINT [--calib-batches 32] [--backend x86|fbgemm|qnnpack]
        [--out FILE] [key=value ...]

Builds torchvision's quantizable variant of ``model.arch``, loads the fp32 weights, fuses
conv+bn(+relu), observes activations on ``--calib-batches`` batches of the training images (with
the val split's transforms: calibration must see what inference sees) and converts to int8. The
file it writes is evaluated by
``python tools/test.py CONFIG FILE model.type=QuantizedImageClassifier device=cpu [+model.backend=...]``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--calib-batches", type=int, default=32)
    ap.add_argument("--backend", default="x86", help="x86 | fbgemm | qnnpack")
    ap.add_argument("--out", default=None, help="default: <checkpoint folder>/int8_<backend>.pth")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args(argv)
    from torchcv.cli import _run
    return _run(lambda _: run(a), argv, a.debug)


def run(a) -> int:
    import copy

    import torch

    import torchcv  # noqa: F401
    from torchcv.config import load_config
    from torchcv.deploy import quantization as Q
    from torchcv.engine.checkpoint import save_checkpoint
    from torchcv.registry import TASKS, ConfigError
    from torchcv.utils.errors import CheckpointError
    from torchcv.utils.weights import load_weights

    cfg = load_config(a.config, a.overrides)
    if cfg["task"] != "classification":
        raise ConfigError(f"task: {cfg['task']}: tools/quantize.py quantizes classification models")
    arch = cfg["model"].get("arch")
    Q.check_arch(arch)
    Q.check_backend(a.backend)
    if a.calib_batches < 1:
        raise ConfigError(f"--calib-batches {a.calib_batches}: must be >= 1")
    task = TASKS.get("classification")(cfg)
    fp32 = task.build_model()
    load_weights(fp32, a.checkpoint)
    net = Q.quantizable_net(arch, fp32.num_classes, **(cfg["model"].get("arch_kwargs") or {}))
    # strict except for the auxiliary heads of GoogLeNet / Inception, which the int8 model drops
    result = net.load_state_dict(fp32.net.state_dict(), strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("aux")]
    if result.missing_keys or unexpected:
        raise CheckpointError(f"{a.checkpoint}: the fp32 {arch} does not match torchvision's quantizable {arch} "
                              f"(missing {result.missing_keys[:5]}, unexpected {unexpected[:5]})")
    Q.prepare_static(net, a.backend)
    calib_cfg = copy.deepcopy(cfg)
    calib_cfg["data"]["train"]["transforms"] = cfg["data"]["val"]["transforms"]
    loader = TASKS.get("classification")(calib_cfg).build_eval_loader("train", seed=cfg["seed"])
    n = Q.calibrate(net, (batch[0] for batch in loader if batch is not None), limit=a.calib_batches)
    Q.convert(net)
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.checkpoint)), f"int8_{a.backend}.pth")
    state = Q.int8_state_dict(net)
    save_checkpoint(out, {"model": state, "meta": {"arch": arch, "backend": a.backend, "calib_batches": n,
                                                   "fp32_checkpoint": a.checkpoint}, "config": cfg.dump()})
    extra = "" if a.backend == "x86" else f" +model.backend={a.backend}"
    print(f"int8 {arch} ({a.backend}, calibrated on {n} batches) -> {out}\n"
          f"evaluate: python tools/test.py {a.config} {out} model.type=QuantizedImageClassifier device=cpu{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
