"""The one video reader of every video dataset: what a video holds (``probe``) and the frames of a
clip (``read_frames``), from a video file or from a folder of extracted frames.

Backends for files: ``opencv`` (default; the opencv-python wheel bundles FFmpeg) and ``pyav``
(optional: ``pip install av``). A frame folder (``<video>/000001.jpg ...``, written by
``datasets/extract_frames.py``) is read with the image reader, one JPEG per frame, and needs no
decoder state: it is the fast path when clips are short and seeking in long files is costly.

Frames come back as uint8 RGB ``[T, H, W, 3]`` in the order of the requested indices (indices may
repeat: a short video's clip is padded with its last frame). A file that does not open, has no
frames, or ends before a requested frame raises ``CorruptVideoError`` (a ``CorruptImageError``),
so the loader's one skip policy (``data.skip_corrupt``) applies to videos too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..utils.errors import ConfigError, CorruptImageError, MissingFileError
from .image_io import IMG_EXTENSIONS

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
BACKENDS = ("opencv", "pyav")
FPS_FILE = "fps.txt"  # a frame folder's frame rate (one number), written by datasets/extract_frames.py

__all__ = ["VIDEO_EXTENSIONS", "BACKENDS", "CorruptVideoError", "VideoInfo", "probe", "read_frames",
           "is_frame_folder", "check_backend"]


class CorruptVideoError(CorruptImageError):
    """A video file (or frame folder) exists but cannot be decoded, or ends before a requested frame."""


@dataclass
class VideoInfo:
    num_frames: int
    fps: Optional[float]  # None: unknown (a frame folder without fps.txt)
    height: int
    width: int


def check_backend(backend: str) -> None:
    """Raise a clear error for an unknown backend, or for ``pyav`` when the package is missing."""
    if backend not in BACKENDS:
        raise ConfigError(f"video backend '{backend}' is not one of {', '.join(BACKENDS)}")
    if backend == "pyav":
        try:
            import av  # noqa: F401
        except ImportError:
            raise ConfigError("video backend 'pyav' is selected but PyAV is not installed: pip install av "
                              "(or use backend: opencv)") from None


def is_frame_folder(path: str) -> bool:
    return os.path.isdir(path)


def frame_files(folder: str) -> List[str]:
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))


def _require(path: str) -> None:
    if not os.path.exists(path):
        raise MissingFileError(f"video not found: {path}")


# ---- probing ----------------------------------------------------------------------------------------
def probe(path: str, backend: str = "opencv") -> VideoInfo:
    """Frame count, frame rate and size of a video file or frame folder."""
    _require(path)
    if is_frame_folder(path):
        return _probe_folder(path)
    return _probe_pyav(path) if backend == "pyav" else _probe_opencv(path)


def _probe_folder(folder: str) -> VideoInfo:
    files = frame_files(folder)
    if not files:
        raise CorruptVideoError(f"frame folder {folder} holds no images ({', '.join(IMG_EXTENSIONS)})")
    first = _decode_frame(os.path.join(folder, files[0]))
    if first is None:
        raise CorruptVideoError(f"cannot decode frame {os.path.join(folder, files[0])}")
    fps = None
    fps_path = os.path.join(folder, FPS_FILE)
    if os.path.isfile(fps_path):
        try:
            fps = float(open(fps_path).read().split()[0])
        except (ValueError, IndexError):
            raise CorruptVideoError(f"{fps_path}: expected one number (the frames per second)") from None
    return VideoInfo(len(files), fps, first.shape[0], first.shape[1])


# FFmpeg (inside OpenCV) and OpenCV print messages of their own for every unreadable file ("moov atom
# not found", "can't be used to capture by name"); the CorruptVideoError we raise says it once, naming
# the file. OpenCV's FFmpeg backend reads this variable when it starts, so it is set on import (set
# it yourself to see FFmpeg's messages); OpenCV's own warnings are lowered on the first video read.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
_quiet = False


def _quiet_opencv() -> None:
    global _quiet
    if not _quiet:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        _quiet = True


def _open_opencv(path: str) -> "cv2.VideoCapture":
    _quiet_opencv()
    # one decoding thread: clips are short and loader workers already run in parallel
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        cap.release()
        raise CorruptVideoError(f"cannot open video {path}: the file is corrupt, truncated or not a video")
    return cap


def _probe_opencv(path: str) -> VideoInfo:
    cap = _open_opencv(path)
    try:
        n = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if n <= 0:  # the container does not say: count by decoding
            n = 0
            while cap.grab():
                n += 1
    finally:
        cap.release()
    if n <= 0 or w <= 0 or h <= 0:
        raise CorruptVideoError(f"video {path} has no decodable frames")
    return VideoInfo(n, fps, h, w)


def _probe_pyav(path: str) -> VideoInfo:
    import av
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise CorruptVideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            n = int(stream.frames or 0)
            if n <= 0 and stream.duration and fps:
                n = int(round(float(stream.duration * stream.time_base) * fps))
            if n <= 0:
                n = sum(1 for _ in container.decode(stream))
            w, h = stream.codec_context.width, stream.codec_context.height
    except av.FFmpegError as e:
        raise CorruptVideoError(f"cannot open video {path}: {e}") from None
    if n <= 0:
        raise CorruptVideoError(f"video {path} has no decodable frames")
    return VideoInfo(n, fps, h, w)


# ---- reading ----------------------------------------------------------------------------------------
def read_frames(path: str, indices: Sequence[int], backend: str = "opencv") -> np.ndarray:
    """Frames ``indices`` (0-based, any order, repeats allowed) as uint8 RGB ``[T, H, W, 3]``."""
    _require(path)
    if len(indices) == 0:
        raise ValueError("read_frames needs at least one frame index")
    wanted = sorted(set(int(i) for i in indices))
    if wanted[0] < 0:
        raise ValueError(f"negative frame index {wanted[0]}")
    if is_frame_folder(path):
        frames = _read_folder(path, wanted)
    elif backend == "pyav":
        frames = _read_pyav(path, wanted)
    else:
        frames = _read_opencv(path, wanted)
    return np.stack([frames[int(i)] for i in indices])


def _decode_frame(path: str) -> Optional[np.ndarray]:
    data = np.fromfile(path, dtype=np.uint8)  # (imread cannot open some non-ASCII paths)
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def _truncated(path: str, index: int) -> CorruptVideoError:
    return CorruptVideoError(f"video {path} ends before frame {index} (truncated or corrupt file)")


def _read_folder(folder: str, wanted: List[int]) -> Dict[int, np.ndarray]:
    files = frame_files(folder)
    out = {}
    for i in wanted:
        if i >= len(files):
            raise _truncated(folder, i)
        path = os.path.join(folder, files[i])
        img = _decode_frame(path)
        if img is None:
            raise CorruptVideoError(f"cannot decode frame {path}")
        out[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return out


def _read_opencv(path: str, wanted: List[int]) -> Dict[int, np.ndarray]:
    cap = _open_opencv(path)
    out = {}
    try:
        pos = 0
        if wanted[0] > 0:
            # FFmpeg seeks to the key frame before and decodes forward: frame-accurate
            cap.set(cv2.CAP_PROP_POS_FRAMES, wanted[0])
            pos = int(round(cap.get(cv2.CAP_PROP_POS_FRAMES)))
            if pos != wanted[0]:  # a container that cannot seek: decode from the start
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                pos = 0
        for i in wanted:
            while pos < i:  # frames between the wanted ones: decoded, never converted
                if not cap.grab():
                    raise _truncated(path, i)
                pos += 1
            ok, img = cap.read()
            if not ok or img is None:
                raise _truncated(path, i)
            pos += 1
            out[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return out


def _read_pyav(path: str, wanted: List[int]) -> Dict[int, np.ndarray]:
    import av
    out: Dict[int, np.ndarray] = {}
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            tb = float(stream.time_base)
            start = stream.start_time or 0
            if wanted[0] > 0 and fps > 0:
                container.seek(start + int(wanted[0] / fps / tb), stream=stream, backward=True, any_frame=False)
            want = set(wanted)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                i = int(round((frame.pts - start) * tb * fps))
                if i in want:
                    out[i] = frame.to_ndarray(format="rgb24")
                if i >= wanted[-1]:
                    break
    except av.FFmpegError as e:
        raise CorruptVideoError(f"cannot decode video {path}: {e}") from None
    missing = [i for i in wanted if i not in out]
    if missing:
        raise _truncated(path, missing[0])
    return out
