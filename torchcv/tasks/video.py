"""Video classification runner (``task: video``).

It is the classification task over clips: the same batches (``default_collate`` stacks clips
``[B, 3, T, H, W]`` and labels), the same training step (the model's ``loss_cls``) and the same
class-count check; what differs is what a *video* needs:

- evaluation scores clips and videos (``VideoClassificationEvaluator``: the softmax of a video's
  clips averaged), because the eval dataset yields several clips per video;
- ``tools/demo.py`` takes video files and predicts each from its uniformly sampled clips, drawn as
  a strip of frames with the top classes;
- ``tools/browse_dataset.py`` draws a clip as a strip of its frames after the transforms.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from ..data.video_io import VIDEO_EXTENSIONS, probe, read_frames
from ..registry import TASKS
from ..utils.errors import DataError
from ..visualization import draw_text_lines, to_display
from .base import move_to
from .classification import ClassificationTask

STRIP_FRAMES = 8  # frames shown in a picture of a clip or video


def frame_strip(frames: list, gap: int = 2) -> np.ndarray:
    """HWC uint8 frames side by side, separated by a dark gap."""
    h = max(f.shape[0] for f in frames)
    sep = np.zeros((h, gap, 3), np.uint8)
    parts = []
    for f in frames:
        parts += [f, sep]
    return np.ascontiguousarray(np.concatenate(parts[:-1], axis=1))


def evenly(n: int, k: int) -> list:
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


@TASKS.register("video")
class VideoClassificationTask(ClassificationTask):
    default_evaluator = "VideoClassificationEvaluator"
    input_extensions = VIDEO_EXTENSIONS  # what tools/demo.py picks from a folder

    @torch.no_grad()
    def predict_image(self, model: nn.Module, path: str, dataset, device: torch.device) -> Dict[str, Any]:
        """The prediction for one video file: the softmax averaged over its evaluation clips (the
        dataset's clip length, frame rate, clips per video and transforms)."""
        if dataset is None or not hasattr(dataset, "video_clips"):
            raise DataError(f"predicting {path} needs the clip settings and transforms of a video dataset: make the "
                            f"config's data.val section buildable (its data folder present), or pass --split")
        clips = dataset.video_clips(path)
        inputs = torch.stack([x for x, _ in clips])
        model.eval()
        probs = self.predict(model, move_to(inputs, device)).float().softmax(-1).mean(0).cpu()
        info = probe(path, dataset.backend)
        picture = frame_strip(list(read_frames(path, evenly(info.num_frames, STRIP_FRAMES), dataset.backend)))
        meta = {"index": 0, "path": path, "orig_size": (info.height, info.width), "clips": len(clips),
                "input_size": tuple(inputs.shape[-2:])}
        return {"image": picture, "output": probs.clamp(min=1e-12).log(), "meta": meta}

    def display_clip(self, clip: torch.Tensor, dataset: Optional[Any]) -> np.ndarray:
        """A model input ``[3, T, H, W]`` (normalised or not) as a strip of frames."""
        transforms = getattr(dataset, "transforms", None)
        return frame_strip([to_display(clip[:, t], transforms) for t in evenly(clip.shape[1], STRIP_FRAMES)])

    def draw_sample(self, image: torch.Tensor, target: Any, dataset) -> np.ndarray:
        return draw_text_lines(self.display_clip(image, dataset), [self._name(int(target), self.class_names(dataset))])
