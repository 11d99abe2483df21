"""Image classification runner."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from ..registry import TASKS, ConfigError
from ..visualization import draw_text_lines, to_display
from .base import Task


@TASKS.register("classification")
class ClassificationTask(Task):
    default_evaluator = "ClassificationEvaluator"

    def check_compatible(self, model, dataset, split):
        model_classes = getattr(model, "num_classes", None)
        data_classes = getattr(dataset, "num_classes", None)
        if model_classes is not None and data_classes is not None and model_classes != data_classes:
            raise ConfigError(f"model.num_classes is {model_classes} but the {split} data has {data_classes} classes "
                              f"({', '.join(dataset.classes[:6])}{' ...' if data_classes > 6 else ''}). "
                              f"Set model.num_classes={data_classes}.")

    # ---- pictures -------------------------------------------------------------------------------
    def _name(self, i: int, names: Optional[Sequence[str]]) -> str:
        return names[i] if names and 0 <= i < len(names) else str(i)

    def draw_prediction(self, image: torch.Tensor, output: Any, meta: Dict[str, Any], dataset,
                        score_thr: float = 0.0, topk: int = 3) -> np.ndarray:
        """The top-k classes with their probabilities."""
        names = self.class_names(dataset)
        probs = output.float().softmax(-1)
        p, i = probs.topk(min(topk, probs.numel()))
        lines = [f"{self._name(int(c), names)} {float(s):.2f}" for s, c in zip(p, i)]
        return draw_text_lines(to_display(image), lines)

    def draw_sample(self, image: torch.Tensor, target: Any, dataset) -> np.ndarray:
        label = int(target.argmax()) if torch.is_tensor(target) and target.dim() > 0 else int(target)
        return draw_text_lines(self.display_image(image, dataset), [self._name(label, self.class_names(dataset))])
