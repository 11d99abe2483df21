"""Shared pieces of the GAN tests: tiny built-in data and overrides that make the shapes configs
train in a second (8-filter networks on 32x32 images)."""
from __future__ import annotations

import pytest

P2P_CONFIG = "configs/gan/shapes/pix2pix_shapes.yaml"
CYCLE_CONFIG = "configs/gan/shapes/cyclegan_shapes.yaml"

COMMON = ["data.num_workers=0", "data.batch_size=2", "data.val_batch_size=4", "train.log_interval=1",
          "train.plot=false"]
P2P_TINY = COMMON + ["model.generator.arch=unet_32", "model.generator.ngf=8", "model.discriminator.ndf=8"]
CYCLE_TINY = COMMON + ["model.generator.arch=resnet_2blocks", "model.generator.ngf=8", "model.discriminator.ndf=8",
                       "model.discriminator.arch=n_layers", "+model.discriminator.n_layers=2"]


@pytest.fixture(scope="session")
def paired_data(tmp_path_factory):
    """32x32 aligned pairs: 12 train, 4 val, 4 test, with a scorer trained for 2 epochs."""
    from datasets.generate_shapes_gan import generate
    out = tmp_path_factory.mktemp("gan") / "paired"
    generate(str(out), "paired", size=32, n_train=12, n_val=4, n_test=4, seed=3, scorer_epochs=2)
    return str(out)


@pytest.fixture(scope="session")
def unpaired_data(tmp_path_factory):
    """32x32 unpaired domains: 12 train, 4 val, 4 test (ground-truth pairs), with a scorer."""
    from datasets.generate_shapes_gan import generate
    out = tmp_path_factory.mktemp("gan") / "unpaired"
    generate(str(out), "unpaired", size=32, n_train=12, n_val=4, n_test=4, seed=4, scorer_epochs=2)
    return str(out)
