"""TensorBoard pictures of translations: after each validation, the grid the translation evaluator
wrote to ``plots/translations.png`` (input | output | target) goes to TensorBoard as ``val/translations``
at the current iteration. List it in ``custom_hooks: [{type: TranslationImagesHook}]`` (the GAN configs do)."""
from __future__ import annotations

import os

import cv2

from ..registry import HOOKS
from ..utils import dist
from .hooks import Hook


@HOOKS.register()
class TranslationImagesHook(Hook):
    priority = 95  # after the evaluator has drawn the picture

    def __init__(self, file: str = "translations.png", tag: str = "val/translations"):
        self.file, self.tag = file, tag

    def after_val(self, trainer, metrics) -> None:
        writer = getattr(trainer, "metrics_writer", None)
        path = os.path.join(trainer.work_dir, "plots", self.file)
        if not dist.is_main() or writer is None or writer.tb is None or not os.path.isfile(path):
            return
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is not None:
            writer.tb.add_image(self.tag, image[:, :, ::-1].copy(), trainer.iter, dataformats="HWC")
