import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PY = sys.executable


def run(args, check=True, env=None, timeout=600, cwd=ROOT):
    """Run a command from the repo root; return CompletedProcess with text output."""
    e = dict(os.environ, PYTHONUNBUFFERED="1", TORCHCV_NO_PROGRESS="1")
    e.setdefault("OMP_NUM_THREADS", "2")
    if env:
        e.update(env)
    p = subprocess.run(args, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"command failed ({p.returncode}): {' '.join(args)}\n--- stdout\n{p.stdout[-4000:]}"
                             f"\n--- stderr\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="session")
def shapes_cls(tmp_path_factory):
    """A small copy of the built-in classification data: 6 classes, 32x32."""
    out = tmp_path_factory.mktemp("data") / "shapes_cls"
    from datasets.generate_shapes_cls import generate
    generate(str(out), seed=0, counts=(("train", 240), ("val", 60), ("test", 60)), size=32)
    return str(out)


# fast settings for the classification config on the tiny data
CLS_FAST = ["model.arch=resnet18", "data.batch_size=32", "data.num_workers=0", "train.log_interval=2",
            "lr_schedule.warmup_iters=0"]
