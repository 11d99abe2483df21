"""The values of the current iteration, shared by the trainer, the optimizers and the hooks.

The trainer puts the losses, the timer hook ``time``/``data_time``, the LR hook ``lr`` and
``lr/<optimizer>``, an optimizer with clipping ``grad_norm/<optimizer>``; the logger reads them all.
A user hook can ``put`` its own scalars and they are logged too (to the console, metrics.jsonl and
TensorBoard). Cleared at the start of every iteration.
"""
from __future__ import annotations

from typing import Dict, Iterator, Tuple


class Storage:
    def __init__(self) -> None:
        self._values: Dict[str, float] = {}

    def put(self, name: str, value: float) -> None:
        self._values[name] = float(value)

    def update(self, values: Dict[str, float]) -> None:
        for k, v in values.items():
            self.put(k, v)

    def get(self, name: str, default: float = 0.0) -> float:
        return self._values.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def items(self) -> Iterator[Tuple[str, float]]:
        return iter(list(self._values.items()))

    def clear(self) -> None:
        self._values.clear()
