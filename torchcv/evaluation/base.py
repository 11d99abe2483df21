"""The evaluator contract.

A task's ``evaluate`` feeds every batch to ``process(outputs, targets, metas)`` on every rank, then
calls ``compute()`` once: it gathers what the ranks collected (``collect``, once) and returns the
metrics (``compute_metrics``), identical on every rank. Optional: ``report()`` (a text table logged
once), ``write(out_dir)`` (predictions and pictures of a test run; ``self.writing`` is set before
processing so an evaluator keeps per-sample outputs only when they will be written) and
``visualize(out_dir)`` (summary pictures refreshed after each validation, e.g. a confusion matrix).

Per-sample records go to ``self.results``; evaluators that reduce numbers instead (a confusion
matrix) override ``collect``.
"""
from __future__ import annotations

from typing import Any, Dict, List

from ..utils import dist


class Evaluator:
    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.results: List[Any] = []
        self.writing = False

    def process(self, outputs: Any, targets: Any, metas: List[dict]) -> None:
        raise NotImplementedError

    def collect(self) -> None:
        """Bring every rank's ``results`` together (in rank order)."""
        self.results = [r for part in dist.all_gather_object(self.results) for r in part]

    def compute_metrics(self) -> Dict[str, float]:
        raise NotImplementedError

    def compute(self) -> Dict[str, float]:
        self.collect()
        return self.compute_metrics()

    def report(self) -> str:
        return ""

    def write(self, out_dir: str) -> None:
        pass

    def visualize(self, out_dir: str) -> None:
        pass
