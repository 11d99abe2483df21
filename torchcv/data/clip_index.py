"""The clip index of a video dataset: for every video its frame count and rate (probed once) and the
clips that the clip parameters cut from it.

A clip is ``frames_per_clip`` consecutive frames of the video *resampled* to ``frame_rate`` (every
frame when ``frame_rate`` is null), starting every ``step_between_clips`` resampled frames. Probing
opens every video, which takes minutes for Kinetics-size data, so the index is cached in a JSON
file next to the data (``<root>/.torchcv_clips_<params>.json``, or in ``cache_dir``), written
atomically; a video whose size or modification time changed, a new video and a removed one are
re-probed / dropped on the next load, the rest comes from the cache. Unreadable videos are cached
too, with their error, so the dataset can apply the skip policy when they are read.

A video shorter than one clip has no clip at the chosen parameters. ``short_videos: pad`` gives it
one clip (its frames, then its last frame repeated: the model still sees every video);
``short_videos: skip`` leaves it out of the dataset (counted in the log).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..utils.errors import ConfigError, DataError, TorchCVError
from ..utils.fileio import atomic_write_text
from .video_io import probe

logger = logging.getLogger("torchcv")
INDEX_VERSION = 1
SHORT_VIDEO_POLICIES = ("pad", "skip")


@dataclass(frozen=True)
class ClipParams:
    frames_per_clip: int = 16
    step_between_clips: int = 1
    frame_rate: Optional[float] = None
    backend: str = "opencv"

    def tag(self) -> str:
        text = json.dumps([self.frames_per_clip, self.step_between_clips, self.frame_rate, self.backend])
        rate = "native" if self.frame_rate is None else f"{self.frame_rate:g}"
        return f"f{self.frames_per_clip}_s{self.step_between_clips}_r{rate}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def resampled_frames(num_frames: int, fps: Optional[float], frame_rate: Optional[float]) -> np.ndarray:
    """The frame numbers that make the video ``frame_rate`` frames per second (all when null, or when
    the video's own rate is unknown). Lower rates skip frames; higher ones repeat them."""
    if frame_rate is None or not fps or abs(fps - frame_rate) < 1e-6:
        return np.arange(num_frames)
    step = fps / frame_rate
    count = int(math.floor(num_frames / step + 1e-9))
    return np.minimum(np.floor(np.arange(count) * step + 1e-9).astype(np.int64), num_frames - 1)


def clip_starts(num_resampled: int, frames_per_clip: int, step: int) -> List[int]:
    if num_resampled < frames_per_clip:
        return []
    return list(range(0, num_resampled - frames_per_clip + 1, step))


@dataclass
class VideoEntry:
    """One video of a dataset: where it is, its label, what probing found and its clips."""
    path: str
    label: int
    num_frames: int = 0
    fps: Optional[float] = None
    size: tuple = (0, 0)
    error: Optional[str] = None
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # resampled frame numbers
    starts: List[int] = field(default_factory=list)
    padded: bool = False  # shorter than one clip: one clip, the last frame repeated

    @property
    def num_clips(self) -> int:
        return len(self.starts)

    def clip_frames(self, clip: int, frames_per_clip: int) -> List[int]:
        """The frame numbers of clip ``clip`` (padded with the last frame when the video is short)."""
        start = self.starts[clip]
        ids = self.frames[start:start + frames_per_clip].tolist()
        return ids + [ids[-1]] * (frames_per_clip - len(ids))


def _stat(path: str) -> List[int]:
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def _probe_record(path: str, backend: str) -> Dict[str, Any]:
    record: Dict[str, Any] = {"stat": _stat(path)}
    try:
        info = probe(path, backend)
        record.update(num_frames=info.num_frames, fps=info.fps, height=info.height, width=info.width)
    except TorchCVError as e:
        record["error"] = str(e)
    return record


class ClipIndex:
    """Probe (or load from the cache) every video and cut its clips."""

    def __init__(self, root: str, params: ClipParams, cache_dir: Optional[str] = None, workers: int = 4):
        self.root = root
        self.params = params
        self.cache_path = os.path.join(cache_dir or root, f".torchcv_clips_{params.tag()}.json")
        self.workers = max(1, workers)

    def _load_cache(self) -> Dict[str, Any]:
        try:
            with open(self.cache_path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            logger.warning("clip index cache %s is unreadable (%s): rebuilding it", self.cache_path, e)
            return {}
        if data.get("version") != INDEX_VERSION or data.get("params") != self._params_record():
            return {}
        return data.get("videos", {})

    def _params_record(self) -> Dict[str, Any]:
        p = self.params
        return {"frames_per_clip": p.frames_per_clip, "step_between_clips": p.step_between_clips,
                "frame_rate": p.frame_rate, "backend": p.backend}

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def records(self, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """Probe records by path, from the cache where the file is unchanged."""
        cached = self._load_cache()
        out: Dict[str, Dict[str, Any]] = {}
        todo = []
        for path in paths:
            rec = cached.get(self._rel(path))
            if rec is not None and rec.get("stat") == _stat(path):
                out[path] = rec
            else:
                todo.append(path)
        if todo:
            logger.info("clip index: probing %d video(s) under %s (%d from the cache)", len(todo), self.root, len(out))
            with ThreadPoolExecutor(self.workers) as pool:  # OpenCV releases the GIL while it opens files
                for path, rec in zip(todo, pool.map(lambda p: _probe_record(p, self.params.backend), todo)):
                    out[path] = rec
        if todo or len(cached) != len(out):
            self._save({self._rel(p): out[p] for p in paths})
        return out

    def _save(self, videos: Dict[str, Dict[str, Any]]) -> None:
        text = json.dumps({"version": INDEX_VERSION, "params": self._params_record(), "videos": videos},
                          separators=(",", ":"))
        try:
            atomic_write_text(self.cache_path, text)
            os.chmod(self.cache_path, 0o644)  # the temp file was private; shared data is readable by all
        except OSError as e:  # a read-only data folder: index again next time
            logger.warning("cannot write the clip index cache %s (%s); set the dataset's cache_dir to a writable "
                           "folder to keep it", self.cache_path, e.strerror or e)

    def entry(self, path: str, label: int, record: Optional[Dict[str, Any]] = None) -> VideoEntry:
        """The ``VideoEntry`` of one video from its probe record (probed now, uncached, when not given:
        a file outside the dataset, e.g. for tools/demo.py). A short video gets one padded clip."""
        rec = record if record is not None else _probe_record(path, self.params.backend)
        p = self.params
        entry = VideoEntry(path, label)
        if "error" in rec:
            entry.error = rec["error"]
            return entry
        if p.frame_rate is not None and not rec["fps"]:
            raise DataError(f"{path}: the frame rate is unknown, so frame_rate={p.frame_rate} cannot resample it. "
                            f"Write the rate into {os.path.join(path, 'fps.txt')} (frame folders) or set "
                            f"frame_rate: null")
        entry.num_frames, entry.fps = rec["num_frames"], rec["fps"]
        entry.size = (rec["height"], rec["width"])
        entry.frames = resampled_frames(entry.num_frames, entry.fps, p.frame_rate)
        entry.starts = clip_starts(len(entry.frames), p.frames_per_clip, p.step_between_clips)
        if not entry.starts and len(entry.frames):
            entry.starts, entry.padded = [0], True
        return entry

    def entries(self, videos: Sequence[tuple], short_videos: str = "pad") -> List[VideoEntry]:
        """``VideoEntry`` per ``(path, label)``; short videos padded or left out (``short_videos``)."""
        if short_videos not in SHORT_VIDEO_POLICIES:
            raise ConfigError(f"short_videos='{short_videos}' must be one of {', '.join(SHORT_VIDEO_POLICIES)}")
        records = self.records([p for p, _ in videos])
        out, short, broken = [], [], 0
        for path, label in videos:
            entry = self.entry(path, label, records[path])
            if entry.error:
                broken += 1
            elif entry.padded or not entry.num_clips:  # no clip, or one padded clip
                short.append(path)
                if short_videos == "skip" or not entry.num_clips:
                    continue
            out.append(entry)
        p = self.params
        if short:
            logger.warning("%d video(s) under %s are shorter than one clip (%d frames at %s fps), %s; first: %s",
                           len(short), self.root, p.frames_per_clip, p.frame_rate or "native",
                           "padded with their last frame" if short_videos == "pad" else "left out", short[0])
        if broken:
            first = next(e for e in out if e.error)
            logger.warning("%d video(s) under %s cannot be read and will be skipped when sampled "
                           "(data.skip_corrupt); first: %s", broken, self.root, first.error)
        return out
