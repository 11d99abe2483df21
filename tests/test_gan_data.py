"""Translation datasets on real files: the aligned A|B layout, separate A/ B/ folders, unpaired
domains; one crop / flip for both images of a pair; values in [-1, 1]; and the bad-input errors
(one line through the CLI)."""
import os

import cv2
import numpy as np
import pytest
import torch

from torchcv.cli import train_main
from torchcv.data.datasets.translation import PairedImageDataset, UnpairedImageDataset
from torchcv.data.loading import SampleReader
from torchcv.registry import TRANSFORMS, ConfigError
from torchcv.utils.errors import DataError, MissingFileError

from gan_parts import CYCLE_CONFIG, CYCLE_TINY, P2P_CONFIG, P2P_TINY, paired_data, unpaired_data  # noqa: F401
from test_bad_input import one_line_error


def write(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def solid(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def test_aligned_pairs_split_into_a_and_b_in_the_model_range(tmp_path):
    write(tmp_path / "train" / "x.png", np.concatenate([solid(8, 8, (255, 0, 0)), solid(8, 8, (0, 0, 255))], 1))
    ds = PairedImageDataset(str(tmp_path), "train")
    a, b, meta = ds[0]
    assert a.dtype == torch.float32 and a.shape == (3, 8, 8)
    assert a[:, 0, 0].tolist() == [1.0, -1.0, -1.0] and b[:, 0, 0].tolist() == [-1.0, -1.0, 1.0]
    assert meta["orig_size"] == (8, 8) and meta["input_size"] == (8, 8) and meta["path"].endswith("x.png")
    a2, b2, _ = PairedImageDataset(str(tmp_path), "train", direction="BtoA", channels_A=1)[0]
    assert torch.equal(a2, b) and b2.shape == (1, 8, 8)  # B->A: the model's input is B; A read as grey
    assert float(b2[0, 0, 0]) == pytest.approx(76 / 127.5 - 1)  # luma of pure red: 0.299 * 255


def test_a_pair_gets_one_crop_and_one_flip(tmp_path):
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    write(tmp_path / "train" / "same.png", np.concatenate([half, half], 1))
    transforms = [TRANSFORMS.get("Resize")(size=[48, 48], antialias=True), TRANSFORMS.get("RandomCrop")(size=32),
                  TRANSFORMS.get("RandomHorizontalFlip")()]
    ds = PairedImageDataset(str(tmp_path), "train", transforms=transforms)
    reader = SampleReader(ds, seed=0)
    crops = set()
    for epoch in range(6):
        a, b, _ = reader[(0, epoch)]
        assert a.shape == (3, 32, 32) and torch.equal(a, b)
        crops.add(a.sum().item())
    assert len(crops) > 1  # the crops do differ between epochs


def test_separate_folders_are_matched_by_name(tmp_path):
    write(tmp_path / "A" / "val" / "p.png", solid(4, 6, (0, 0, 0)))
    write(tmp_path / "B" / "val" / "p.png", solid(4, 6, (255, 255, 255)))
    a, b, meta = PairedImageDataset(str(tmp_path), "val", layout="separate")[0]
    assert a.shape == (3, 4, 6) and float(a.max()) == -1.0 and float(b.min()) == 1.0
    assert meta["path_B"].endswith(os.path.join("B", "val", "p.png"))
    write(tmp_path / "A" / "val" / "q.png", solid(4, 6, (0, 0, 0)))
    with pytest.raises(MissingFileError, match=r"q.png has no partner .*B/val/q.png"):
        PairedImageDataset(str(tmp_path), "val", layout="separate")


def test_unpaired_domains_draw_b_per_sample(tmp_path):
    for i in range(5):
        write(tmp_path / "trainA" / f"{i}.png", solid(4, 4, (i * 50, 0, 0)))
    for i in range(3):
        write(tmp_path / "trainB" / f"{i}.png", solid(4, 4, (0, i * 100, 0)))
    ds = UnpairedImageDataset(str(tmp_path), "train")
    assert len(ds) == 5 and not ds.serial
    reader = SampleReader(ds, seed=0)
    draws = [reader[(i, e)][2]["path_B"] for e in range(4) for i in range(5)]
    again = [reader[(i, e)][2]["path_B"] for e in range(4) for i in range(5)]
    assert draws == again and len(set(draws)) == 3  # random, yet the same on every read of a sample
    serial = UnpairedImageDataset(str(tmp_path), "train", serial=True)
    assert [os.path.basename(serial[i][2]["path_B"]) for i in range(5)] == ["0.png", "1.png", "2.png", "0.png",
                                                                           "1.png"]
    swapped = UnpairedImageDataset(str(tmp_path), "train", direction="BtoA", serial=True)
    assert len(swapped) == 5 and swapped[0][2]["path"].endswith(os.path.join("trainB", "0.png"))


def test_dataset_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(ConfigError, match="folder not found: .*trainA"):
        UnpairedImageDataset(str(tmp_path), "train")
    write(tmp_path / "train" / "wide.png", solid(8, 12, (0, 0, 0)))
    with pytest.raises(DataError, match=r"wide.png is 12x8 .*width must be twice its height.*layout: separate"):
        PairedImageDataset(str(tmp_path), "train")[0]
    with pytest.raises(ConfigError, match="direction: 'AB' must be AtoB or BtoA"):
        PairedImageDataset(str(tmp_path), "train", direction="AB")


# ---- bad input through the command line: one line naming the file / key and the fix ----------------
def test_unpaired_folder_with_one_side_empty(tmp_path, capsys, unpaired_data):  # noqa: F811
    import shutil
    data = tmp_path / "d"
    shutil.copytree(unpaired_data, data)
    for f in os.listdir(data / "trainB"):
        os.remove(data / "trainB" / f)
    rc = train_main([CYCLE_CONFIG, "--work-dir", str(tmp_path / "wd"), f"data.root={data}", *CYCLE_TINY])
    one_line_error(capsys, rc, 1, "trainB holds no images", "both domains")


def test_aligned_image_that_is_not_twice_as_wide(tmp_path, capsys, paired_data):  # noqa: F811
    import shutil
    data = tmp_path / "d"
    shutil.copytree(paired_data, data)
    bad = data / "train" / "00003.png"
    write(bad, solid(32, 40, (0, 0, 0)))
    rc = train_main([P2P_CONFIG, "--work-dir", str(tmp_path / "wd"), f"data.root={data}", *P2P_TINY,
                     "train.max_iters=12", "data.train.transforms=[]"])
    one_line_error(capsys, rc, 1, str(bad), "is 40x32", "width must be twice its height")


@pytest.mark.parametrize("override,needles", [
    (["model.in_channels=1"], ["model.in_channels=1 but data.train gives 3-channel A (input) images",
                               "channels_A / channels_B"]),
    (["+data.train.channels_B=1", "+data.val.channels_B=1"],
     ["model.out_channels=3 but data.train gives 1-channel B (output) images"]),
    (["optimizer={gen: {type: Adam, lr: 0.001, params: netG}, D: {type: Adam, lr: 0.001, params: netD}}"],
     ["task gan steps the optimizers 'G' (generators) and 'D'", "['gen', 'D']"]),
    (["model.generator.arch=unet_64"], ["unet_64 needs image sides that are multiples of 64, got 32x32"]),
    (["model.gan_mode=wgan"], ["gan_mode: 'wgan' is unknown", "wgangp"]),
    (["gan.pool_size=-1"], ["gan.pool_size", ">= 0"]),
])
def test_config_mismatches(tmp_path, capsys, paired_data, override, needles):  # noqa: F811
    rc = train_main([P2P_CONFIG, "--work-dir", str(tmp_path / "wd"), f"data.root={paired_data}", *P2P_TINY,
                     "train.max_iters=2", *override])
    one_line_error(capsys, rc, 2, *needles)
