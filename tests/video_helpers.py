"""Small video data for the video tests: the built-in generator at test size, and videos whose
frames say their own number (so a test can tell exactly which frames a clip holds)."""
import logging
import os

import cv2
import numpy as np
import pytest

from datasets.generate_shapes_video import generate, write_video

KINETICS_NORM = {"type": "Normalize", "mean": [0.43216, 0.394666, 0.37645], "std": [0.22803, 0.22145, 0.216989]}
# the shapes config at test size: 4-frame 32x32 clips, batch 4, a few iterations
VIDEO_FAST = ["data.batch_size=4", "data.num_workers=0", "data.train.frames_per_clip=4",
              "data.val.frames_per_clip=4", "data.test.frames_per_clip=4", "data.val.clips_per_video=2",
              "data.test.clips_per_video=2", "data.train.transforms.0.size=32", "data.val.transforms.0.size=32",
              "train.log_interval=1", "lr_schedule.warmup_iters=0"]


@pytest.fixture(autouse=True)
def torchcv_logs_reach_caplog():
    """An in-process run earlier in the session (``setup_logging``) leaves the ``torchcv`` logger
    not propagating, with a handler on a captured stream that pytest has closed since: undo both for
    the test, so ``caplog`` sees the messages, then put them back."""
    log = logging.getLogger("torchcv")
    propagate, handlers = log.propagate, list(log.handlers)
    log.propagate = True
    for h in handlers:
        log.removeHandler(h)
    yield
    log.propagate = propagate
    for h in handlers:
        log.addHandler(h)


def tiny_shapes(out, seed=0, train=16, val=8, test=8, size=40, frames=8):
    """The built-in moving-shapes data, small: 8 classes, ``frames``-frame videos of size x size."""
    generate(str(out), seed=seed, counts=(("train", train), ("val", val), ("test", test)), size=size, frames=frames)
    return str(out)


def numbered_frames(n, h=32, w=48):
    """Frames that carry their number in binary: six vertical bands of w/6 pixels, bright for a 1
    bit, dark for a 0 (robust to lossy compression, up to 63 frames)."""
    assert n <= 64
    frames = np.full((n, h, w, 3), 25, np.uint8)
    band = w // 6
    for i in range(n):
        for bit in range(6):
            if i >> bit & 1:
                frames[i, :, bit * band:(bit + 1) * band] = 230
    return frames


def frame_numbers(clip):
    """The number of each frame of a uint8 clip [T, H, W, 3] of numbered frames."""
    clip = np.asarray(clip, dtype=np.float32)
    band = clip.shape[2] // 6
    return [sum(1 << bit for bit in range(6) if f[:, bit * band:(bit + 1) * band].mean() > 128) for f in clip]


def write_numbered(path, n, fps=30.0, codec="mp4v"):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    write_video(str(path), numbered_frames(n), fps, codec)
    return str(path)


def corrupt_copy(src, dst, keep_bytes=None):
    """A truncated copy of ``src`` (``keep_bytes``) or, without it, bytes that are not a video."""
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[:keep_bytes] if keep_bytes is not None else b"\x00\x00\x00\x18ftypmp42 not a video" * 20)
    return str(dst)


__all__ = ["torchcv_logs_reach_caplog", "KINETICS_NORM", "VIDEO_FAST", "tiny_shapes", "numbered_frames", "frame_numbers", "write_numbered",
           "corrupt_copy", "cv2"]
