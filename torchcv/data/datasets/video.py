"""Video classification datasets: an item is one clip ``[3, T, H, W]`` of a video, its label and meta.

Layouts:
- ``VideoFolderDataset``: ``root/<class>/<video>.mp4`` (Kinetics: ``kinetics400/{train,val}/<class>/``);
- ``UCF101Dataset``, ``HMDB51Dataset``: the videos plus the official split lists;
- in all three a video may be a *frame folder* instead of a file (``<class>/<video>/000001.jpg ...``,
  written by ``datasets/extract_frames.py``): the fast path that needs no decoder.

Clip sampling (``sampling``):
- ``random`` (training): the dataset has ``clips_per_video`` items per video; each reads a clip at a
  random start (torchvision's RandomClipSampler). The start is drawn on the sample's seeded stream,
  so it depends only on (seed, epoch, item), like every augmentation.
- ``uniform`` (evaluation): ``clips_per_video`` clips evenly spaced over each video (all of them
  when the video has fewer); the evaluator averages a video's clips into its video prediction.

``meta`` holds ``index``, ``path``, ``video`` (the video's number), ``clip`` (its clip number),
``start_frame``, ``orig_size`` (decoded H, W) and ``input_size``. Transforms see the clip as a
``tv_tensors.Video`` ``[T, 3, H, W]``, so every torchvision v2 transform (Resize, RandomCrop,
RandomHorizontalFlip, Normalize ...) draws its random parameters once and applies them to every
frame alike; the dataset then returns ``[3, T, H, W]``, the layout of torchvision's video models.
"""
from __future__ import annotations

import os
import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ...registry import DATASETS, ConfigError
from ...utils.errors import CorruptImageError, DataError, MissingFileError
from ..clip_index import ClipIndex, ClipParams, VideoEntry
from ..image_io import IMG_EXTENSIONS
from ..transforms import compose
from ..video_io import VIDEO_EXTENSIONS, CorruptVideoError, check_backend, read_frames

SAMPLING = ("random", "uniform")


def uniform_clips(num_clips: int, count: int) -> List[int]:
    """``count`` clip numbers evenly spaced over ``num_clips`` (first and last included), no repeats."""
    if num_clips <= count:
        return list(range(num_clips))
    return sorted(set(np.round(np.linspace(0, num_clips - 1, count)).astype(int).tolist()))


class VideoClipDataset(Dataset):
    """Clips of a list of ``(path, label)`` videos; subclasses find the videos and the classes."""

    classes: List[str]

    def __init__(self, videos: Sequence[Tuple[str, int]], classes: Sequence[str], root: str,
                 frames_per_clip: int = 16, step_between_clips: int = 1, frame_rate: Optional[float] = None,
                 clips_per_video: int = 1, sampling: str = "random", transforms: Optional[Sequence] = None,
                 backend: str = "opencv", short_videos: str = "pad", cache_dir: Optional[str] = None,
                 index_workers: int = 4):
        name = type(self).__name__
        for key, value in (("frames_per_clip", frames_per_clip), ("step_between_clips", step_between_clips),
                           ("clips_per_video", clips_per_video), ("index_workers", index_workers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}.{key}={value!r}: give an integer >= 1")
        if frame_rate is not None and (not isinstance(frame_rate, (int, float)) or frame_rate <= 0):
            raise ConfigError(f"{name}.frame_rate={frame_rate!r}: give frames per second > 0, or null to keep "
                              f"every frame")
        if sampling not in SAMPLING:
            raise ConfigError(f"{name}.sampling='{sampling}': one of {', '.join(SAMPLING)} (random for training, "
                              f"uniform for evaluation)")
        check_backend(backend)
        self.root = root
        self.classes = list(classes)
        self.frames_per_clip = frames_per_clip
        self.clips_per_video = clips_per_video
        self.sampling = sampling
        self.backend = backend
        self.transforms = compose(transforms)
        params = ClipParams(frames_per_clip, step_between_clips, None if frame_rate is None else float(frame_rate),
                            backend)
        self.index = ClipIndex(root, params, cache_dir, index_workers)
        self.videos: List[VideoEntry] = self.index.entries(list(videos), short_videos)
        # items: (video number, clip number or None = a random clip); an unreadable video is one item
        # that raises when read, so the loader's skip policy counts it once
        self.items: List[Tuple[int, Optional[int]]] = []
        for v, entry in enumerate(self.videos):
            if entry.error or sampling == "random":
                self.items += [(v, None)] * (1 if entry.error else clips_per_video)
            else:
                self.items += [(v, c) for c in uniform_clips(entry.num_clips, clips_per_video)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def __len__(self) -> int:
        return len(self.items)

    def read_clip(self, entry: VideoEntry, clip: int) -> Tuple[torch.Tensor, List[int]]:
        """Clip ``clip`` of ``entry`` as uint8 ``[T, 3, H, W]`` and its frame numbers."""
        ids = entry.clip_frames(clip, self.frames_per_clip)
        frames = read_frames(entry.path, ids, self.backend)
        # contiguous [T, 3, H, W]: a permuted (channels-last) view made the uint8 -> float conversion
        # of the transforms about 10x slower than this one copy of the uint8 frames
        return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), ids

    def apply_transforms(self, frames: torch.Tensor, label: int):
        clip, label = self.transforms(tv_tensors.Video(frames), label)
        clip = torch.as_tensor(clip).as_subclass(torch.Tensor)
        if clip.dim() != 4:
            raise DataError(f"{type(self).__name__}: the transforms turned a clip into shape {tuple(clip.shape)}; "
                            f"video transforms must keep [T, C, H, W]")
        return clip.permute(1, 0, 2, 3), label  # [C, T, H, W]

    def __getitem__(self, index: int):
        v, clip = self.items[index]
        entry = self.videos[v]
        if entry.error:
            raise CorruptVideoError(entry.error)
        if clip is None:
            clip = random.randrange(entry.num_clips)  # the sample's seeded stream (SampleReader)
        frames, ids = self.read_clip(entry, clip)
        size = tuple(frames.shape[-2:])
        x, label = self.apply_transforms(frames, entry.label)
        meta = {"index": index, "path": entry.path, "video": v, "clip": clip, "start_frame": ids[0],
                "orig_size": size, "input_size": tuple(x.shape[-2:])}
        return x, label, meta

    def video_clips(self, path: str, label: int = -1) -> List[Tuple[torch.Tensor, dict]]:
        """Evaluation clips of any video file with this dataset's settings (tools/demo.py)."""
        entry = self.index.entry(path, label)  # probed now: the dataset's cached index stays as it is
        if entry.error:
            raise CorruptVideoError(entry.error)
        if not entry.num_clips:
            raise CorruptVideoError(f"video {path} has no frame at frame_rate={self.index.params.frame_rate}")
        out = []
        for c in uniform_clips(entry.num_clips, self.clips_per_video):
            frames, ids = self.read_clip(entry, c)
            x, _ = self.apply_transforms(frames, label)
            out.append((x, {"index": c, "path": path, "video": 0, "clip": c, "start_frame": ids[0],
                            "orig_size": tuple(frames.shape[-2:]), "input_size": tuple(x.shape[-2:])}))
        return out


# ---- finding the videos ----------------------------------------------------------------------------
def _missing_root(root: str, key: str) -> ConfigError:
    return ConfigError(f"{key}: dataset folder '{root}' does not exist. Fix data.root in the config (or pass "
                       f"data.root=PATH), or create the built-in data with the run script / datasets/ generator.")


def _check_split_list_args(dataset: str, name: str, root: str, fold: int, split: str) -> None:
    """The arguments UCF101 and HMDB51 share: an existing root, one of the three official folds, a split."""
    if not os.path.isdir(root):
        raise _missing_root(root, f"{dataset}.root")
    if fold not in (1, 2, 3):
        raise ConfigError(f"{dataset}.fold={fold!r}: {name} has folds 1, 2 and 3")
    if split not in ("train", "test"):
        raise ConfigError(f"{dataset}.split='{split}': train or test")


def _is_video(folder: str, name: str, exts: Tuple[str, ...]) -> bool:
    path = os.path.join(folder, name)
    if os.path.isdir(path):  # a frame folder
        return any(f.lower().endswith(IMG_EXTENSIONS) for f in os.listdir(path))
    return name.lower().endswith(exts)


def resolve_video(root: str, rel: str, list_file: str, lineno: int) -> str:
    """``root/rel``, or the frame folder ``root/rel`` without its extension (extracted frames)."""
    path = os.path.join(root, rel)
    if os.path.exists(path):
        return path
    frames = os.path.splitext(path)[0]
    if os.path.isdir(frames):
        return frames
    raise MissingFileError(f"{list_file}:{lineno}: video {path} does not exist (nor a frame folder {frames}/); "
                           f"check the dataset's root")


CLIP_ARGS_DOC = """
    Clip arguments (every video dataset): ``frames_per_clip`` (16), ``step_between_clips`` (1, in
    resampled frames), ``frame_rate`` (null: every frame; 15: resample to 15 fps, torchvision's
    Kinetics recipe), ``clips_per_video`` and ``sampling`` (random: training, uniform: evaluation),
    ``transforms``, ``backend`` (opencv | pyav), ``short_videos`` (pad | skip), ``cache_dir`` (where
    the clip index is cached; default: next to the videos), ``index_workers`` (parallel probing).
"""


@DATASETS.register()
class VideoFolderDataset(VideoClipDataset):
    __doc__ = """``root/<class>/<video>`` (Kinetics-400 ``train/`` and ``val/``); a video is a file with
    one of ``extensions`` or a frame folder. Classes are the sorted folder names unless ``classes``
    lists them.""" + CLIP_ARGS_DOC

    def __init__(self, root: str, frames_per_clip: int = 16, step_between_clips: int = 1,
                 frame_rate: Optional[float] = None, clips_per_video: int = 1, sampling: str = "random",
                 transforms: Optional[Sequence] = None, backend: str = "opencv", short_videos: str = "pad",
                 cache_dir: Optional[str] = None, index_workers: int = 4, classes: Optional[List[str]] = None,
                 extensions: Sequence[str] = VIDEO_EXTENSIONS):
        if not os.path.isdir(root):
            raise _missing_root(root, "VideoFolderDataset.root")
        found = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise ConfigError(f"VideoFolderDataset: '{root}' has no class sub-folders; expected root/<class>/<video>")
        names = list(classes) if classes else found
        missing = [c for c in names if c not in found]
        if missing:
            raise ConfigError(f"VideoFolderDataset: class folder(s) {missing} listed in 'classes' are missing in {root}")
        exts = tuple(e.lower() for e in extensions)
        videos = []
        for label, name in enumerate(names):
            folder = os.path.join(root, name)
            files = sorted(f for f in os.listdir(folder) if not f.startswith(".") and _is_video(folder, f, exts))
            if not files:
                raise ConfigError(f"VideoFolderDataset: class folder '{folder}' has no videos (extensions "
                                  f"{', '.join(exts)}, or frame folders). Add videos or remove the folder.")
            videos += [(os.path.join(folder, f), label) for f in files]
        super().__init__(videos, names, root, frames_per_clip, step_between_clips, frame_rate, clips_per_video,
                         sampling, transforms, backend, short_videos, cache_dir, index_workers)


@DATASETS.register()
class UCF101Dataset(VideoClipDataset):
    __doc__ = """UCF101: videos under ``root/<Class>/v_<Class>_gXX_cYY.avi`` and the official lists in
    ``annotation_path`` (``classInd.txt``, ``trainlist0{fold}.txt``, ``testlist0{fold}.txt``);
    ``split``: train | test, ``fold``: 1-3.""" + CLIP_ARGS_DOC

    def __init__(self, root: str, annotation_path: str, fold: int = 1, split: str = "train",
                 frames_per_clip: int = 16, step_between_clips: int = 1, frame_rate: Optional[float] = None,
                 clips_per_video: int = 1, sampling: str = "random", transforms: Optional[Sequence] = None,
                 backend: str = "opencv", short_videos: str = "pad", cache_dir: Optional[str] = None,
                 index_workers: int = 4):
        _check_split_list_args("UCF101Dataset", "UCF101", root, fold, split)
        class_file = os.path.join(annotation_path, "classInd.txt")
        classes = []
        for lineno, line in _lines(class_file):
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
                raise DataError(f"{class_file}:{lineno}: expected '<number> <ClassName>' numbered from 1, got '{line}'")
            classes.append(parts[1])
        list_file = os.path.join(annotation_path, f"{split}list0{fold}.txt")
        videos = []
        for lineno, line in _lines(list_file):
            rel = line.split()[0]
            name = rel.replace("\\", "/").split("/")[0]
            if name not in classes:
                raise DataError(f"{list_file}:{lineno}: class folder '{name}' of {rel} is not in {class_file}")
            videos.append((resolve_video(root, rel, list_file, lineno), classes.index(name)))
        if not videos:
            raise DataError(f"{list_file} lists no videos")
        super().__init__(videos, classes, root, frames_per_clip, step_between_clips, frame_rate, clips_per_video,
                         sampling, transforms, backend, short_videos, cache_dir, index_workers)


@DATASETS.register()
class HMDB51Dataset(VideoClipDataset):
    __doc__ = """HMDB51: videos under ``root/<class>/<video>.avi`` and the official split files in
    ``annotation_path`` (``<class>_test_split{fold}.txt``, lines ``<video> <1|2|0>``: 1 train, 2 test,
    0 unused); ``split``: train | test, ``fold``: 1-3.""" + CLIP_ARGS_DOC

    def __init__(self, root: str, annotation_path: str, fold: int = 1, split: str = "train",
                 frames_per_clip: int = 16, step_between_clips: int = 1, frame_rate: Optional[float] = None,
                 clips_per_video: int = 1, sampling: str = "random", transforms: Optional[Sequence] = None,
                 backend: str = "opencv", short_videos: str = "pad", cache_dir: Optional[str] = None,
                 index_workers: int = 4):
        _check_split_list_args("HMDB51Dataset", "HMDB51", root, fold, split)
        if not os.path.isdir(annotation_path):
            raise ConfigError(f"HMDB51Dataset.annotation_path: '{annotation_path}' does not exist")
        suffix = f"_test_split{fold}.txt"
        split_files = sorted(f for f in os.listdir(annotation_path) if f.endswith(suffix))
        if not split_files:
            raise ConfigError(f"HMDB51Dataset: no '*{suffix}' files in {annotation_path}")
        classes = [f[:-len(suffix)] for f in split_files]
        wanted = "1" if split == "train" else "2"
        videos = []
        for label, (name, fname) in enumerate(zip(classes, split_files)):
            list_file = os.path.join(annotation_path, fname)
            for lineno, line in _lines(list_file):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise DataError(f"{list_file}:{lineno}: expected '<video> <0|1|2>', got '{line}'")
                if parts[1] == wanted:
                    videos.append((resolve_video(root, os.path.join(name, parts[0]), list_file, lineno), label))
        if not videos:
            raise DataError(f"HMDB51Dataset: the fold {fold} split files in {annotation_path} list no {split} videos")
        super().__init__(videos, classes, root, frames_per_clip, step_between_clips, frame_rate, clips_per_video,
                         sampling, transforms, backend, short_videos, cache_dir, index_workers)


def _lines(path: str):
    if not os.path.isfile(path):
        raise MissingFileError(f"list file not found: {path}")
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield lineno, line


__all__ = ["VideoClipDataset", "VideoFolderDataset", "UCF101Dataset", "HMDB51Dataset", "CorruptImageError",
           "uniform_clips"]
