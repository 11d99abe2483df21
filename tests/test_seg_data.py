"""Segmentation data: the generator, the VOC / Cityscapes / ADE20K / folder readers, joint transforms
and clear errors on bad input."""
import hashlib
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

import torchcv  # noqa: F401
from torchcv.data.datasets.segmentation import (CityscapesSegDataset, ADE20KSegDataset, SegDataError,
                                                SegFolderDataset, VOCSegDataset, voc_palette)
from torchcv.data.transforms import compose
from torchcv.registry import TRANSFORMS
from datasets.generate_shapes_seg import CLASSES, generate

SHAPES = list(CLASSES)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes"))
    generate(root, size=48, n_train=6, n_val=3, n_test=2, seed=3)
    return root


def _digest(root):
    h = hashlib.sha256()
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            with open(os.path.join(d, f), "rb") as fh:
                h.update(f.encode() + fh.read())
    return h.hexdigest()


def test_generator_layout_deterministic_and_learnable_labels(shapes, tmp_path):
    generate(str(tmp_path), size=48, n_train=6, n_val=3, n_test=2, seed=3)
    assert _digest(str(tmp_path)) == _digest(shapes)
    with open(os.path.join(shapes, "ImageSets", "Segmentation", "val.txt")) as f:
        assert len(f.read().split()) == 3
    im = Image.open(os.path.join(shapes, "SegmentationClass", "train_00000.png"))
    assert im.mode == "P" and im.getpalette()[:6] == [0, 0, 0, 128, 0, 0]  # VOC colour map
    values = set()
    for i in range(6):
        values |= set(np.unique(np.array(Image.open(os.path.join(shapes, "SegmentationClass", f"train_{i:05d}.png")))))
    assert 0 in values and 255 in values and values <= {0, 1, 2, 3, 255}


def test_voc_dataset_items(shapes):
    ds = VOCSegDataset(shapes, "train", classes=SHAPES)
    image, target, meta = ds[1]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert target.dtype == torch.long and target.shape == (48, 48)
    assert meta["index"] == 1 and meta["path"].endswith("train_00001.jpg")
    raw = np.array(Image.open(meta["ann_path"]))
    assert (target.numpy() == raw).all()
    assert len(ds) == 6 and ds.num_classes == 4


def test_transforms_move_image_and_mask_together():
    """The image encodes its label in the red channel; after scale/crop/pad/flip the two still agree."""
    torch.manual_seed(0)
    import random
    random.seed(0)
    lab = torch.randint(0, 4, (10, 12)).repeat_interleave(10, 0).repeat_interleave(10, 1).to(torch.uint8)  # 100x120, 10 px blocks
    img = torch.stack([lab * 60, lab * 0, lab * 0]).to(torch.uint8)
    ts = compose([TRANSFORMS.build(c) for c in [
        {"type": "RandomScale", "scale_range": [0.5, 1.5]},
        {"type": "RandomCropPad", "size": [128, 80], "mask_fill": 255},
        {"type": "RandomHorizontalFlip", "p": 0.5}]])
    for _ in range(10):
        i2, m2 = ts(tv_tensors.Image(img), tv_tensors.Mask(lab))
        assert i2.shape[-2:] == (128, 80) and m2.shape[-2:] == (128, 80)
        valid = m2 != 255
        # interior pixels (away from block edges) must agree; count agreement overall
        agree = ((i2[0].float() / 60).round() == m2.float())[valid].float().mean()
        assert agree > 0.75  # misaligned pairs agree ~25% (4 random classes); edges blur a little
        assert set(m2.unique().tolist()) <= {0, 1, 2, 3, 255}
        assert (i2[:, m2 == 255] == 0).all()  # 255 only in the padding, where the image is filled with 0


def test_label_out_of_range_names_file_and_value(shapes, tmp_path):
    root = tmp_path / "bad"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "a.jpg")
    m = np.zeros((8, 8), np.uint8)
    m[2, 2] = 7
    m[0, 0] = 255
    Image.fromarray(m).save(root / "masks" / "a.png")
    ds = SegFolderDataset(str(root), num_classes=4)
    with pytest.raises(SegDataError, match=r"a\.png.*\[7\]"):
        ds[0]


def test_size_mismatch_and_missing_mask(tmp_path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "a.jpg")
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(root / "masks" / "a.png")
    with pytest.raises(SegDataError, match=r"mask size \(8, 9\) differs from image .*a\.jpg"):
        SegFolderDataset(str(root), num_classes=2)[0]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "b.jpg")
    with pytest.raises(SegDataError, match=r"b\.jpg has no mask"):
        SegFolderDataset(str(root), num_classes=2)


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    city = tmp_path / "leftImg8bit" / "val" / "x"
    gt = tmp_path / "gtFine" / "val" / "x"
    city.mkdir(parents=True)
    gt.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(city / "x_0_0_leftImg8bit.png")
    ids = np.array([[7, 8, 26, 33], [0, 1, 4, 24], [7, 7, 7, 7], [11, 11, 11, 11]], np.uint8)
    Image.fromarray(ids).save(gt / "x_0_0_gtFine_labelIds.png")
    ds = CityscapesSegDataset(str(tmp_path), "val")
    _, t, _ = ds[0]
    assert t[0].tolist() == [0, 1, 13, 18] and t[1].tolist() == [255, 255, 255, 11]
    # the preprocessor writes *_labelTrainIds.png, which the dataset then reads directly
    from datasets.cityscapes_trainids import convert
    assert convert(str(tmp_path)) == 1
    ds2 = CityscapesSegDataset(str(tmp_path), "val")
    assert not ds2._map_ids and torch.equal(ds2[0][1], t)


def test_ade20k_reduce_zero_label(tmp_path):
    (tmp_path / "images" / "validation").mkdir(parents=True)
    (tmp_path / "annotations" / "validation").mkdir(parents=True)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "images" / "validation" / "a.jpg")
    Image.fromarray(np.array([[0, 1, 150], [2, 0, 3]], np.uint8)).save(tmp_path / "annotations" / "validation" / "a.png")
    _, t, _ = ADE20KSegDataset(str(tmp_path), "validation")[0]
    assert t.tolist() == [[255, 0, 149], [1, 255, 2]]


def test_voc_palette_tool_roundtrip(tmp_path):
    from datasets.voc_palette import colour_to_index
    pal = voc_palette()
    idx = np.array([[0, 1, 2], [15, 255, 3]], np.uint8)
    rgb = pal[idx]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    out = colour_to_index(str(tmp_path / "c.png"), str(tmp_path / "p.png"))
    assert (out == idx).all()
    assert Image.open(tmp_path / "p.png").mode == "P"
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"bad\.png.*\(1, 2, 3\)"):
        colour_to_index(str(tmp_path / "bad.png"), str(tmp_path / "q.png"))
