"""Video data: decoding (OpenCV, PyAV, frame folders), the cached clip index, clip sampling, frame-rate
resampling, UCF101/HMDB51 split lists, clip transforms and the built-in generator."""
import importlib.util
import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from torchcv.data import clip_index, video_io
from torchcv.data.clip_index import clip_starts, resampled_frames
from torchcv.data.datasets.video import uniform_clips
from torchcv.data.loading import SampleReader
from torchcv.data.transforms import compose
from torchcv.registry import DATASETS, TRANSFORMS

from video_helpers import (KINETICS_NORM, frame_numbers, numbered_frames, tiny_shapes,  # noqa: F401
                           torchcv_logs_reach_caplog, write_numbered)

HAVE_AV = importlib.util.find_spec("av") is not None


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """root/<class>/<video>.mp4 with numbered frames: 60 frames at 30 fps, 20 at 30 fps, 5 at 30 fps."""
    root = tmp_path_factory.mktemp("numbered")
    write_numbered(root / "a" / "long.mp4", 60)
    write_numbered(root / "a" / "mid.mp4", 20)
    write_numbered(root / "b" / "short.mp4", 5)
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return tiny_shapes(tmp_path_factory.mktemp("vshapes") / "d", train=8, val=8, test=8)


# ---- decoding ---------------------------------------------------------------------------------------
def test_opencv_reads_exact_frames_after_seeking(numbered):
    path = str(numbered / "a" / "long.mp4")
    info = video_io.probe(path)
    assert (info.num_frames, info.fps, info.height, info.width) == (60, 30.0, 32, 48)
    every = video_io.read_frames(path, list(range(60)))
    assert every.shape == (60, 32, 48, 3) and every.dtype == np.uint8
    assert frame_numbers(every) == list(range(60))
    assert frame_numbers(video_io.read_frames(path, [41, 43, 45])) == [41, 43, 45]  # seek, skip between
    assert frame_numbers(video_io.read_frames(path, [7, 3, 3, 59])) == [7, 3, 3, 59]  # any order, repeats


@pytest.mark.skipif(not HAVE_AV, reason="PyAV is optional (pip install av)")
def test_pyav_gives_the_same_frames_as_opencv(numbered):
    path = str(numbered / "a" / "long.mp4")
    assert video_io.probe(path, "pyav") == video_io.probe(path, "opencv")
    for ids in ([0, 1, 2, 3], [30, 32, 34, 36], [56, 57, 58, 59]):
        assert np.array_equal(video_io.read_frames(path, ids, "pyav"), video_io.read_frames(path, ids, "opencv"))


def test_missing_pyav_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(Exception, match=r"'pyav' is selected but PyAV is not installed: pip install av"):
        video_io.check_backend("pyav")
    with pytest.raises(Exception, match="video backend 'ffmpeg' is not one of opencv, pyav"):
        video_io.check_backend("ffmpeg")


def test_frame_folders_are_the_same_clips(numbered, tmp_path):
    from datasets.extract_frames import extract
    src = str(numbered / "a" / "mid.mp4")
    dst = str(tmp_path / "frames" / "a" / "mid")
    assert extract((src, dst, 95, None)) == (src, 20, "")
    assert sorted(os.listdir(dst))[:2] == ["000001.jpg", "000002.jpg"] and open(f"{dst}/fps.txt").read() == "30\n"
    assert video_io.probe(dst) == video_io.VideoInfo(20, 30.0, 32, 48)
    assert frame_numbers(video_io.read_frames(dst, [2, 4, 19])) == [2, 4, 19]
    assert extract((src, dst, 95, None)) == (src, 0, "")  # already extracted: skipped


# ---- the clip index ---------------------------------------------------------------------------------
def test_resampling_and_clip_starts_exact():
    assert resampled_frames(10, 30.0, None).tolist() == list(range(10))
    assert resampled_frames(10, 30.0, 15).tolist() == [0, 2, 4, 6, 8]
    assert resampled_frames(10, 25.0, 15).tolist() == [0, 1, 3, 5, 6, 8]  # floor(k * 25 / 15)
    assert resampled_frames(4, 10.0, 20).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # a higher rate repeats frames
    assert clip_starts(10, 4, 1) == [0, 1, 2, 3, 4, 5, 6] and clip_starts(10, 4, 3) == [0, 3, 6]
    assert clip_starts(3, 4, 1) == []
    assert uniform_clips(10, 3) == [0, 4, 9] and uniform_clips(2, 5) == [0, 1] and uniform_clips(7, 1) == [0]


def test_dataset_clips_at_a_frame_rate(numbered):
    ds = DATASETS.build({"type": "VideoFolderDataset", "root": str(numbered), "frames_per_clip": 4,
                         "step_between_clips": 2, "frame_rate": 15, "clips_per_video": 3, "sampling": "uniform"})
    long, mid, short = ds.videos
    assert (long.num_frames, long.fps, long.num_clips) == (60, 30.0, 14)  # 30 frames at 15 fps, starts 0, 2 .. 26
    assert (mid.num_clips, short.num_clips, short.padded) == (4, 1, True)  # short: 2 frames at 15 fps, padded
    assert ds.items == [(0, 0), (0, 6), (0, 13), (1, 0), (1, 2), (1, 3), (2, 0)]
    clip, label, meta = ds[1]  # video 0, clip 6: resampled frames 12..15 = frames 24, 26, 28, 30
    assert clip.shape == (3, 4, 32, 48) and clip.dtype == torch.uint8 and label == 0
    assert frame_numbers(clip.permute(1, 2, 3, 0)) == [24, 26, 28, 30]
    assert meta == {"index": 1, "path": long.path, "video": 0, "clip": 6, "start_frame": 24, "orig_size": (32, 48),
                    "input_size": (32, 48)}
    assert frame_numbers(ds[6][0].permute(1, 2, 3, 0)) == [0, 2, 2, 2]  # the short video, last frame repeated
    frames, ids = ds.read_clip(long, 6)  # contiguous [T, 3, H, W]: the float conversion of a permuted view is 10x slower
    assert frames.shape == (4, 3, 32, 48) and frames.is_contiguous() and ids == [24, 26, 28, 30]


def test_random_clips_depend_only_on_seed_epoch_and_sample(numbered, caplog):
    with caplog.at_level(logging.WARNING, logger="torchcv"):
        ds = DATASETS.build({"type": "VideoFolderDataset", "root": str(numbered), "frames_per_clip": 8,
                             "clips_per_video": 2, "sampling": "random", "short_videos": "skip"})
    assert "1 video(s)" in caplog.text and "shorter than one clip" in caplog.text and "left out" in caplog.text
    assert len(ds) == 4 and [v for v, _ in ds.items] == [0, 0, 1, 1]  # the 5-frame video is left out
    reader = SampleReader(ds, seed=3)
    starts = [reader[(i, 0)][2]["start_frame"] for i in range(4)]
    assert starts == [SampleReader(ds, seed=3)[(i, 0)][2]["start_frame"] for i in range(4)]
    epochs = {reader[(0, e)][2]["start_frame"] for e in range(12)}
    assert len(epochs) > 3 and max(epochs) <= 52  # a new random start per epoch, always a whole clip
    clip = reader[(0, 5)][0]
    first = frame_numbers(clip.permute(1, 2, 3, 0))[0]
    assert frame_numbers(clip.permute(1, 2, 3, 0)) == list(range(first, first + 8))


def test_clip_index_is_cached_next_to_the_data_and_rebuilt_on_change(numbered, tmp_path, monkeypatch, caplog):
    root = tmp_path / "copy"
    shutil.copytree(numbered, root, ignore=shutil.ignore_patterns(".torchcv_clips_*"))
    spec = {"type": "VideoFolderDataset", "root": str(root), "frames_per_clip": 8}
    with caplog.at_level(logging.INFO, logger="torchcv"):
        ds = DATASETS.build(spec)
    assert "probing 3 video(s)" in caplog.text
    cache = [f for f in os.listdir(root) if f.startswith(".torchcv_clips_f8_s1_rnative_")]
    assert len(cache) == 1
    saved = json.load(open(root / cache[0]))
    assert saved["params"] == {"frames_per_clip": 8, "step_between_clips": 1, "frame_rate": None, "backend": "opencv"}
    assert saved["videos"]["a/long.mp4"]["num_frames"] == 60 and len(saved["videos"]) == 3
    assert [v.num_clips for v in ds.videos] == [53, 13, 1]

    probed = []
    real_probe = clip_index.probe
    monkeypatch.setattr(clip_index, "probe", lambda p, b: probed.append(os.path.basename(p)) or real_probe(p, b))
    again = DATASETS.build(spec)
    assert probed == [] and [v.num_clips for v in again.videos] == [53, 13, 1]  # all from the cache
    write_numbered(root / "a" / "mid.mp4", 30)  # changed: re-probed, the others come from the cache
    os.remove(root / "b" / "short.mp4")
    write_numbered(root / "b" / "new.mp4", 12)
    changed = DATASETS.build(spec)
    assert sorted(probed) == ["mid.mp4", "new.mp4"]
    assert [(os.path.basename(v.path), v.num_clips) for v in changed.videos] == [("long.mp4", 53), ("mid.mp4", 23),
                                                                                ("new.mp4", 5)]
    assert sorted(json.load(open(root / cache[0]))["videos"]) == ["a/long.mp4", "a/mid.mp4", "b/new.mp4"]


def test_cache_dir_for_read_only_data(numbered, tmp_path):
    ds = DATASETS.build({"type": "VideoFolderDataset", "root": str(numbered), "frames_per_clip": 4,
                         "cache_dir": str(tmp_path / "cache")})
    assert len(os.listdir(tmp_path / "cache")) == 1 and ds.num_videos == 3


# ---- split lists ------------------------------------------------------------------------------------
def test_ucf101_split_lists(tmp_path):
    videos = tmp_path / "UCF-101"
    for cls, g in (("ApplyEyeMakeup", 1), ("ApplyEyeMakeup", 8), ("Archery", 1), ("Archery", 9)):
        write_numbered(videos / cls / f"v_{cls}_g{g:02d}_c01.avi", 6, codec="MJPG")
    ann = tmp_path / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (ann / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                         "Archery/v_Archery_g09_c01.avi 2\n")
    (ann / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nArchery/v_Archery_g01_c01.avi\n")
    spec = {"type": "UCF101Dataset", "root": str(videos), "annotation_path": str(ann), "frames_per_clip": 4}
    train, test = DATASETS.build({**spec, "split": "train"}), DATASETS.build({**spec, "split": "test"})
    assert train.classes == ["ApplyEyeMakeup", "Archery"] and train.num_classes == 2
    assert [(os.path.basename(v.path), v.label) for v in train.videos] == [("v_ApplyEyeMakeup_g08_c01.avi", 0),
                                                                          ("v_Archery_g09_c01.avi", 1)]
    assert [v.label for v in test.videos] == [0, 1] and "g01" in test.videos[0].path
    (ann / "testlist01.txt").write_text("Archery/v_Archery_g05_c01.avi\n")
    with pytest.raises(Exception, match=r"testlist01.txt:1: video .*v_Archery_g05_c01.avi does not exist"):
        DATASETS.build({**spec, "split": "test"})


def test_hmdb51_split_files(tmp_path):
    videos = tmp_path / "hmdb51"
    for cls, names in (("brush_hair", ["a.avi", "b.avi", "c.avi"]), ("cartwheel", ["d.avi", "e.avi"])):
        for n in names:
            write_numbered(videos / cls / n, 6, codec="MJPG")
    ann = tmp_path / "splits"
    ann.mkdir()
    (ann / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (ann / "cartwheel_test_split1.txt").write_text("d.avi 2 \ne.avi 1 \n")
    spec = {"type": "HMDB51Dataset", "root": str(videos), "annotation_path": str(ann), "frames_per_clip": 4}
    train, test = DATASETS.build({**spec, "split": "train"}), DATASETS.build({**spec, "split": "test"})
    assert train.classes == ["brush_hair", "cartwheel"]
    assert [(os.path.basename(v.path), v.label) for v in train.videos] == [("a.avi", 0), ("e.avi", 1)]
    assert [(os.path.basename(v.path), v.label) for v in test.videos] == [("b.avi", 0), ("d.avi", 1)]


def test_ucf_list_finds_extracted_frame_folders(tmp_path):
    frames = tmp_path / "frames" / "Archery" / "v_Archery_g01_c01"
    frames.mkdir(parents=True)
    import cv2
    for i, f in enumerate(numbered_frames(6)):
        cv2.imwrite(str(frames / f"{i + 1:06d}.png"), f)
    ann = tmp_path / "lists"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 Archery\n")
    (ann / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    ds = DATASETS.build({"type": "UCF101Dataset", "root": str(tmp_path / "frames"), "annotation_path": str(ann),
                         "split": "test", "frames_per_clip": 4, "sampling": "uniform", "clips_per_video": 2})
    assert ds.videos[0].path == str(frames) and ds.items == [(0, 0), (0, 2)]
    assert frame_numbers(ds[1][0].permute(1, 2, 3, 0)) == [2, 3, 4, 5]


# ---- transforms -------------------------------------------------------------------------------------
def test_random_spatial_transforms_are_the_same_for_every_frame():
    """Kinetics recipe (resize 128x171, random crop 112, flip) on a clip of 4 identical frames: the
    output frames stay identical (one crop, one flip for the clip), and the crop does vary."""
    pipeline = compose([TRANSFORMS.build(t) for t in (
        {"type": "Resize", "size": [128, 171]}, {"type": "RandomHorizontalFlip"}, {"type": "RandomCrop", "size": 112},
        {"type": "ToFloat"}, KINETICS_NORM)])
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8, generator=g)
    clip = tv_tensors.Video(frame.expand(4, -1, -1, -1).clone())
    outputs = []
    for seed in range(6):
        torch.manual_seed(seed)
        out = pipeline(clip)
        assert isinstance(out, tv_tensors.Video) and out.shape == (4, 3, 112, 112) and out.dtype == torch.float32
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4))
        outputs.append(out[0])
    assert len({tuple(o[0, :2, :2].flatten().tolist()) for o in outputs}) > 1


def test_shuffle_frames_keeps_the_frames_not_the_order():
    shuffle = TRANSFORMS.build({"type": "ShuffleFrames"})
    clip = tv_tensors.Video(torch.arange(8).view(8, 1, 1, 1).expand(8, 3, 2, 2).clone())
    torch.manual_seed(0)
    orders = []
    for _ in range(5):
        out = shuffle(clip)
        order = out[:, 0, 0, 0].tolist()
        assert sorted(order) == list(range(8)) and isinstance(out, tv_tensors.Video)
        orders.append(order)
    assert any(o != list(range(8)) for o in orders)


# ---- the built-in generator -------------------------------------------------------------------------
def test_generator_layout_and_determinism(shapes, tmp_path):
    from datasets.generate_shapes_video import CLASSES, render
    ds = DATASETS.build({"type": "VideoFolderDataset", "root": f"{shapes}/train", "frames_per_clip": 8})
    assert ds.classes == sorted(CLASSES) and ds.num_videos == 8 and len(ds) == 8
    assert [os.path.basename(os.path.dirname(v.path)) for v in ds.videos] == sorted(CLASSES)
    assert (ds.videos[0].num_frames, ds.videos[0].fps, ds.videos[0].size) == (8, 15.0, (40, 40))
    a = render("rotate_cw", np.random.default_rng(5), 40, 8)
    assert np.array_equal(a, render("rotate_cw", np.random.default_rng(5), 40, 8))
    assert a.shape == (8, 40, 40, 3) and a.dtype == np.uint8


def test_generator_motion_is_the_label():
    """The actor moves exactly as its class says, from a random place: position, angle and size of
    one frame are spread alike for the classes of a pair (left/right, cw/ccw, grow/shrink)."""
    from datasets.generate_shapes_video import actor_track
    rng = np.random.default_rng(0)
    x, y, r, a = actor_track("move_right", rng, 64, 16)
    step = (x[1] - x[0]) % 64
    assert 2.88 <= step <= 4.16 and np.allclose((np.diff(x) % 64), step) and np.ptp(y) == 0 and np.ptp(r) == 0
    x, y, r, a = actor_track("move_up", rng, 64, 16)
    assert np.allclose(np.diff(y) % 64, (y[1] - y[0]) % 64) and (y[1] - y[0]) % 64 > 32  # wraps upwards
    _, _, _, a = actor_track("rotate_cw", rng, 64, 16)
    assert np.all(np.diff(a) > 0)
    _, _, r, _ = actor_track("shrink", rng, 64, 16)
    assert np.all(np.diff(r) < 0)
    starts = {c: [actor_track(c, np.random.default_rng(s), 64, 16) for s in range(300)] for c in ("move_left", "move_right")}
    means = {c: np.mean([t[0].mean() for t in v]) for c, v in starts.items()}
    assert abs(means["move_left"] - means["move_right"]) < 3  # where the actor is says nothing of its direction
