"""Command-line entry points shared by tools/*.py and the ``torchcv`` console command."""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import List, Optional

from .config import load_config
from .registry import ConfigError
from .utils.errors import CheckpointError, TorchCVError


def _common(ap: argparse.ArgumentParser, with_config: bool = True) -> None:
    if with_config:
        ap.add_argument("config", help="YAML config file")
    ap.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--deterministic", action="store_true", default=None)
    ap.add_argument("--amp", choices=["fp16", "bf16"], default=None, help="mixed precision (bf16 on CPU)")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_epochs=20")


def _work_dir(args, cfg) -> str:
    return args.work_dir or cfg.get("work_dir") or os.path.join(
        "work_dirs", os.path.splitext(os.path.basename(args.config))[0])


def error_message(e: BaseException) -> str:
    """One line for an error a user caused. Errors raised in a DataLoader worker arrive with the
    worker's traceback inside their message: keep only the original message."""
    text = str(e)
    if "Original Traceback" in text:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        name = type(e).__name__
        for ln in reversed(lines):
            head, sep, rest = ln.partition(": ")
            if sep and (head == name or head.endswith("." + name)):
                text = rest
                break
    return text


def _run(fn, argv, debug: bool = False) -> int:
    """Errors a user can cause (config, data, checkpoint, non-finite loss, full disk) print one line
    naming the file / key / value and the fix; ``--debug`` shows the traceback instead."""
    try:
        return fn(argv)
    except KeyboardInterrupt:
        print("interrupted: the last complete checkpoint is intact; continue with --resume (run script: resume)",
              file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        if isinstance(e, ConfigError):
            print(f"config error: {error_message(e)}", file=sys.stderr)
            return 2
        if isinstance(e, (TorchCVError, FloatingPointError)):
            print(f"error: {error_message(e)}", file=sys.stderr)
            return 1
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: disk full while writing {e.filename or 'output'} ({e.strerror}); earlier checkpoints "
                  f"are intact. Free some space and continue with --resume.", file=sys.stderr)
            return 1
        raise


def train_main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Train a model described by a YAML config.")
    _common(ap)
    ap.add_argument("--resume", nargs="?", const="auto", default=None,
                    help="continue a run: from PATH, or (no value) from the newest checkpoint in the work dir")
    ap.add_argument("--load-from", help="initialise weights from a checkpoint / state_dict (weights only)")
    args = ap.parse_intermixed_args(argv)
    if args.resume not in (None, "auto") and "=" in args.resume and not os.path.exists(args.resume):
        args.overrides.insert(0, args.resume)  # `--resume key=value`: the value is an override, not a path
        args.resume = "auto"

    def go(_):
        import torchcv  # noqa: F401  (fills the registries)
        from .engine.trainer import Trainer
        from .utils import dist
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, _work_dir(args, cfg), resume=args.resume, load_from=args.load_from,
                          seed=args.seed, deterministic=args.deterministic, amp=args.amp)
        trainer.train()
        dist.cleanup()
        return 0
    return _run(go, argv, args.debug)


def test_main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate a checkpoint on the val or test split.")
    ap.add_argument("config", help="YAML config file")
    ap.add_argument("checkpoint", help="checkpoint or weights file")
    _common(ap, with_config=False)
    ap.add_argument("--split", default="test", choices=["val", "test", "train"])
    ap.add_argument("--out-dir", help="write predictions and pictures here")
    args = ap.parse_intermixed_args(argv)

    def go(_):
        import torchcv  # noqa: F401
        from .engine.trainer import Trainer
        from .utils import dist
        if not args.checkpoint.startswith("torchvision://") and not os.path.isfile(args.checkpoint):
            raise CheckpointError(f"checkpoint not found: {args.checkpoint}. Train first (run script: train), or "
                                  f"give the path of a checkpoint / weights file")
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, _work_dir(args, cfg), seed=args.seed, deterministic=args.deterministic, amp=args.amp)
        trainer.test(args.checkpoint, split=args.split, out_dir=args.out_dir)
        dist.cleanup()
        return 0
    return _run(go, argv, args.debug)


def list_main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="List what is registered (models, backbones, datasets ...).")
    ap.add_argument("registry", nargs="?", help="one registry name; all when omitted")
    args = ap.parse_args(argv)
    import torchcv  # noqa: F401
    from .registry import all_registries, did_you_mean
    regs = all_registries()
    if args.registry:
        regs = [r for r in regs if r.name == args.registry]
        if not regs:
            names = [r.name for r in all_registries()]
            print(f"no registry '{args.registry}'.{did_you_mean(args.registry, names)} Registries: {', '.join(names)}",
                  file=sys.stderr)
            return 2
    for r in regs:
        print(f"{r.name} ({len(r)}):")
        for n in r.names():
            print(f"  {n}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """``torchcv train|test|list ...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main, "test": test_main, "list": list_main}
    if not argv or argv[0] not in commands:
        print("usage: torchcv {train,test,list} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])
