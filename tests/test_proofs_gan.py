"""The GAN proofs on the built-in data, through the run scripts (minutes each on 2 CPU cores, so
marked slow: .venv/bin/python -m pytest -q -m slow tests/test_proofs_gan.py).

- pix2pix (outline -> filled shape): val L1 at most half that of predicting the mean target image,
  PSNR at least that baseline + 5 dB;
- CycleGAN (palette A <-> palette B): the scorer assigns >= 90% of the A->B translations to domain B
  and the source shape, with cycle L1 <= 0.05 (the issue's target)."""
import json
import os

import pytest

from conftest import run

pytestmark = pytest.mark.slow


def last_val(work_dir):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["mode"] == "val"][-1]


def test_pix2pix_beats_the_mean_target_image(tmp_path):
    run(["bash", "scripts/gan/shapes/run_pix2pix_shapes.sh", "train", "proof"], env={"WORK_ROOT": str(tmp_path)},
        timeout=3600)
    m = last_val(tmp_path / "gan/shapes/pix2pix/proof")
    assert m["L1"] <= 0.5 * m["mean_image_L1"], m
    assert m["PSNR"] >= m["mean_image_PSNR"] + 5.0, m


def test_cyclegan_translates_to_the_right_domain_and_class(tmp_path):
    run(["bash", "scripts/gan/shapes/run_cyclegan_shapes.sh", "train", "proof"], env={"WORK_ROOT": str(tmp_path)},
        timeout=3600)
    m = last_val(tmp_path / "gan/shapes/cyclegan/proof")
    assert m["acc"] >= 0.9 and m["cycle_L1"] <= 0.05, m
