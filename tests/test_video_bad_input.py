"""Bad video input: unreadable or truncated files (skipped with a count, or one clear error), videos
shorter than a clip (padded or left out), empty class folders, a missing decoder."""
import os
import shutil

import pytest

from torchcv.cli import train_main
from torchcv.data.loading import SampleReader
from torchcv.registry import DATASETS

from conftest import PY, run
from test_bad_input import one_line_error
from video_helpers import (VIDEO_FAST, corrupt_copy, frame_numbers, tiny_shapes, torchcv_logs_reach_caplog,  # noqa: F401
                           write_numbered)

CFG = "configs/video/shapes/mc3_18_shapes.yaml"
SMALL = VIDEO_FAST + ["train.max_iters=2", "train.val_interval=2", "train.plot=false", "train.amp=null"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return tiny_shapes(tmp_path_factory.mktemp("vbad") / "d", train=8, val=8, test=8)


def copy_data(shapes, tmp_path):
    dst = tmp_path / "d"
    shutil.copytree(shapes, dst, ignore=shutil.ignore_patterns(".torchcv_clips_*"))
    return dst


def test_unreadable_and_truncated_videos_are_skipped_with_a_count(shapes, tmp_path):
    d = copy_data(shapes, tmp_path)
    garbage = sorted((d / "train" / "grow").iterdir())[0]
    corrupt_copy(garbage, garbage)
    truncated = sorted((d / "train" / "shrink").iterdir())[0]
    corrupt_copy(truncated, truncated, keep_bytes=os.path.getsize(truncated) // 2)
    ds = DATASETS.build({"type": "VideoFolderDataset", "root": str(d / "train"), "frames_per_clip": 4,
                         "clips_per_video": 3})
    assert sorted(os.path.basename(os.path.dirname(v.path)) for v in ds.videos if v.error) == ["grow", "shrink"]
    assert len(ds) == 6 * 3 + 2  # an unreadable video is one item, skipped once when read
    p = run([PY, "tools/train.py", CFG, "--work-dir", str(tmp_path / "wd"), f"data.root={d}", *SMALL,
             "data.batch_size=8", "train.max_iters=3"], check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 video(s) under" in p.stdout and "cannot be read and will be skipped" in p.stdout
    assert "skipping corrupt image (1 skipped so far" in p.stdout and "skipping corrupt image (2 skipped so far" in p.stdout
    assert garbage.name in p.stdout and "cannot open video" in p.stdout
    # skipping off: one line naming the file, even from a loader worker
    p = run([PY, "tools/train.py", CFG, "--work-dir", str(tmp_path / "wd2"), f"data.root={d}", *SMALL,
             "data.batch_size=8", "data.skip_corrupt=false", "data.num_workers=1"], check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "cannot open video" in lines[0] and ("grow" in lines[0] or "shrink" in lines[0])
    assert "data.skip_corrupt=true" in lines[0]


def test_video_ending_early_is_a_corrupt_clip(tmp_path):
    path = write_numbered(tmp_path / "v" / "a" / "x.avi", 40, codec="MJPG")
    ds = DATASETS.build({"type": "VideoFolderDataset", "root": str(tmp_path / "v"), "frames_per_clip": 8,
                         "sampling": "uniform", "clips_per_video": 2})
    corrupt_copy(path, path + ".tmp", keep_bytes=os.path.getsize(path) * 2 // 3)
    os.replace(path + ".tmp", path)  # truncated after indexing, as a disk or copy error would
    assert frame_numbers(ds[0][0].permute(1, 2, 3, 0)) == list(range(8))  # the start still decodes
    reader = SampleReader(ds, seed=0, skip_corrupt=True, train=False)
    assert reader[1] is None  # evaluation leaves the clip out
    with pytest.raises(Exception, match=r"x.avi ends before frame 32 \(truncated or corrupt file\)"):
        SampleReader(ds, seed=0, skip_corrupt=False, train=False)[1]


def test_short_videos_are_padded_or_left_out(tmp_path, caplog):
    write_numbered(tmp_path / "v" / "a" / "long.mp4", 12)
    write_numbered(tmp_path / "v" / "b" / "short.mp4", 3)
    spec = {"type": "VideoFolderDataset", "root": str(tmp_path / "v"), "frames_per_clip": 6}
    padded = DATASETS.build(spec)
    assert frame_numbers(padded[1][0].permute(1, 2, 3, 0)) == [0, 1, 2, 2, 2, 2]
    with caplog.at_level("WARNING", logger="torchcv"):
        skipped = DATASETS.build({**spec, "short_videos": "skip"})
    assert [os.path.basename(v.path) for v in skipped.videos] == ["long.mp4"] and len(skipped) == 1
    assert "1 video(s) under" in caplog.text and "left out; first:" in caplog.text and "short.mp4" in caplog.text
    with pytest.raises(Exception, match="short_videos='drop' must be one of pad, skip"):
        DATASETS.build({**spec, "short_videos": "drop"})


def test_empty_class_folder_and_missing_root(shapes, tmp_path, capsys):
    d = copy_data(shapes, tmp_path)
    for f in (d / "train" / "grow").iterdir():
        f.unlink()
    rc = train_main([CFG, "--work-dir", str(tmp_path / "wd"), f"data.root={d}", *SMALL])
    one_line_error(capsys, rc, 2, "class folder", "grow' has no videos", "Add videos or remove the folder")
    rc = train_main([CFG, "--work-dir", str(tmp_path / "wd"), f"data.root={tmp_path / 'nowhere'}", *SMALL])
    one_line_error(capsys, rc, 2, "VideoFolderDataset.root: dataset folder", "nowhere/train' does not exist")


@pytest.mark.parametrize("override,needles", [
    (["data.train.frames_per_clip=0"], ["VideoFolderDataset.frames_per_clip=0: give an integer >= 1"]),
    (["data.train.sampling=random_clips"], ["sampling='random_clips'", "random for training"]),
    (["+data.train.backend=ffmpeg"], ["video backend 'ffmpeg' is not one of opencv, pyav"]),
    (["+data.train.frame_rate=-5"], ["frame_rate=-5: give frames per second > 0"]),
    (["model.arch=resnet18"], ["model.arch=resnet18 is an image network", "r3d_18"]),
    (["model.num_classes=5"], ["model.num_classes is 5 but the train data has 8 classes", "num_classes=8"]),
])
def test_config_values(shapes, tmp_path, capsys, override, needles):
    rc = train_main([CFG, "--work-dir", str(tmp_path / "wd"), f"data.root={shapes}", *SMALL, *override])
    one_line_error(capsys, rc, 2, *needles)
