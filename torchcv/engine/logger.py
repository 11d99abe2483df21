"""Where training output goes: console (progress bar + lines), log.txt, metrics.jsonl, TensorBoard."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional

from ..utils.fileio import atomic_write_text

logger = logging.getLogger("torchcv")


def setup_logging(work_dir: Optional[str], rank: int = 0) -> None:
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if work_dir and rank == 0:
        os.makedirs(work_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(work_dir, "log.txt"))
        fh.setFormatter(fmt)
        logger.addHandler(fh)


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def metrics_table(metrics: Dict[str, float], title: str = "") -> str:
    if not metrics:
        return ""
    width = max(len(k) for k in metrics)
    lines = [title] if title else []
    bar = "+" + "-" * (width + 2) + "+" + "-" * 12 + "+"
    lines.append(bar)
    for k, v in metrics.items():
        val = f"{v:.4f}" if isinstance(v, float) else str(v)
        lines.append(f"| {k:<{width}} | {val:>10} |")
    lines.append(bar)
    return "\n".join(lines)


class ProgressBar:
    """One line redrawn in place on a terminal; on a pipe, nothing (the periodic log lines remain)."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.live = stream.isatty() and os.environ.get("TORCHCV_NO_PROGRESS") is None
        self._last = 0.0

    def update(self, text: str, force: bool = False) -> None:
        now = time.time()
        if not self.live or (not force and now - self._last < 0.2):
            return
        self._last = now
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()


def bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(1, total))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


class MetricsWriter:
    """metrics.jsonl (one JSON object per logged step/evaluation) + TensorBoard scalars (rank 0 only)."""

    def __init__(self, work_dir: str, start_iter: int = 0):
        self.path = os.path.join(work_dir, "metrics.jsonl")
        if os.path.isfile(self.path):
            self._truncate_after(start_iter)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # tensorboard is a listed requirement; say how to fix rather than skip quietly
            raise ImportError("TensorBoard logging needs the 'tensorboard' package: pip install -r requirements.txt") from e
        self.tb = SummaryWriter(os.path.join(work_dir, "tensorboard"),
                                purge_step=start_iter + 1)  # keep what the checkpoint covers

    def _truncate_after(self, it: int) -> None:
        """Drop records written after the starting checkpoint: they will be produced again."""
        kept: List[str] = []
        with open(self.path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("iter", 0) <= it:
                    kept.append(json.dumps(rec))
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: Dict[str, Any], step: int, prefix: str) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "iter"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def log_metrics(metrics: Dict[str, float], title: str) -> None:
    """The headline metrics as a table (per-class entries, named 'x/y', go to the task's report)."""
    logger.info(metrics_table({k: v for k, v in metrics.items() if "/" not in k}, title))
