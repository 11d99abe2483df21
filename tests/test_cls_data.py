"""Classification data: list files, transforms from config (incl. RandAugment/AutoAugment), every shipped config trains."""
import pytest
import torch

from torchcv.config import load_config
from torchcv.engine.trainer import Trainer
from torchcv.registry import DATASETS


def test_list_file_dataset_matches_folder_dataset(shapes_cls):
    a = DATASETS.build({"type": "ImageListDataset", "root": shapes_cls, "list_file": f"{shapes_cls}/val.txt"})
    b = DATASETS.build({"type": "ImageFolderDataset", "root": f"{shapes_cls}/val"})
    assert len(a) == len(b) == 60
    assert sorted(lab for _, lab in a.samples) == sorted(lab for _, lab in b.samples)
    img, label, meta = a[0]
    assert img.dtype == torch.uint8 and img.shape[0] == 3 and isinstance(label, int) and meta["path"]


@pytest.mark.parametrize("name", ["RandAugment", "AutoAugment", "TrivialAugmentWide", "RandomErasing"])
def test_augmentations_by_name(name, shapes_cls):
    pipeline = [{"type": name}] if name != "RandomErasing" else [{"type": "ToFloat"}, {"type": name, "p": 1.0}]
    ds = DATASETS.build({"type": "ImageFolderDataset", "root": f"{shapes_cls}/val", "transforms": pipeline})
    img, label, _ = ds[3]
    assert img.shape == (3, 32, 32) and label == ds.samples[3][1]


@pytest.mark.parametrize("config", ["resnet18_shapes", "mobilenet_v2_shapes", "shufflenet_v2_x1_0_shapes",
                                    "vgg11_bn_shapes", "resnet18_shapes_list"])
def test_shipped_shapes_configs_train(config, shapes_cls, tmp_path):
    cfg = load_config(f"configs/cls/shapes/{config}.yaml",
                      [f"data.root={shapes_cls}", "data.batch_size=8", "data.num_workers=0", "train.by=iter",
                       "train.max_iters=2", "train.val_interval=2", "train.plot=false", "+data.val.root=" +
                       f"{shapes_cls}/test"])
    metrics = Trainer(cfg, str(tmp_path)).train()
    assert 0 <= metrics["top1"] <= 1


def test_imagenet_configs_resolve():
    for m in ("resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "vgg11_bn"):
        cfg = load_config(f"configs/cls/imagenet/{m}_imagenet.yaml", ["data.root=/imagenet"])
        assert cfg["data"]["train"]["root"] == "/imagenet/train" and cfg["model"]["num_classes"] == 1000
        assert cfg["data"]["test"]["root"] == "/imagenet/val"
