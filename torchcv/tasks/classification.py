"""Image classification runner."""
from __future__ import annotations

from ..registry import TASKS, ConfigError
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

    def build_evaluator(self, dataset, split):
        ev = self.cfg.get("evaluation") or {}
        from ..registry import EVALUATORS
        opts = {"type": self.default_evaluator}
        if ev.get("topk"):
            opts["topk"] = ev["topk"]
        return EVALUATORS.build(opts, key="evaluation", dataset=dataset)
