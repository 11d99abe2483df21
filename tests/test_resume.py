"""Principle 4: a checkpoint holds everything; resuming equals never stopping; kills corrupt nothing."""
import glob
import json
import os
import pickle
import random
import signal
import subprocess
import time

import pytest
import torch

from torchcv.engine.checkpoint import CheckpointError, find_resume_checkpoint, load_checkpoint

from conftest import CLS_FAST, PY, ROOT, run

CONFIG = "configs/cls/shapes/resnet18_shapes.yaml"
# multistep does not depend on the run length, so "2 epochs, then resume to 4" is the same schedule
SCHEDULE = ["lr_schedule.policy=multistep", "+lr_schedule.milestones=[3]", "optimizer.lr=0.002"]


def overrides(data, epochs):
    return CLS_FAST + SCHEDULE + [f"data.root={data}", f"train.max_epochs={epochs}", "train.keep_checkpoints=10"]


def train(work_dir, data, epochs, *extra, check=True):
    return run([PY, "tools/train.py", CONFIG, "--work-dir", str(work_dir), "--deterministic", *extra,
                *overrides(data, epochs)], check=check)


def final_weights(work_dir):
    return load_checkpoint(os.path.join(work_dir, "checkpoints", "epoch_4.pth"))["model"]


def train_losses(work_dir):
    with open(os.path.join(work_dir, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    return [(r["iter"], r["loss"], r["lr"]) for r in recs if r["mode"] == "train"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs"


@pytest.fixture(scope="module")
def straight(tmp_path_factory, shapes_cls):
    wd = tmp_path_factory.mktemp("straight")
    train(wd, shapes_cls, 4)
    return wd


def test_resume_gives_identical_weights_and_losses(tmp_path, shapes_cls, straight):
    train(tmp_path, shapes_cls, 2)
    p = train(tmp_path, shapes_cls, 4, "--resume")
    assert "resumed from" in p.stdout and "epoch_2.pth" in p.stdout
    assert "train.max_epochs changed: 2 -> 4" in p.stdout  # resume may lengthen the run, and says so
    assert_same_weights(final_weights(straight), final_weights(tmp_path))
    assert train_losses(straight) == train_losses(tmp_path)
    ckpt = load_checkpoint(os.path.join(tmp_path, "checkpoints", "epoch_4.pth"))
    for key in ("model", "optimizers", "scaler", "ema", "task", "hooks", "rng", "meta", "config"):
        assert key in ckpt
    assert {"optimizer", "scheduler", "updates", "pending_grads"} <= set(ckpt["optimizers"]["default"])
    assert ckpt["meta"]["epoch"] == 4 and ckpt["meta"]["iter"] == 4 * 7


def test_resume_without_checkpoint_says_so_loudly(tmp_path, shapes_cls):
    p = train(tmp_path, shapes_cls, 1, "--resume")
    assert "STARTING FROM SCRATCH" in p.stdout


SLOW_WRITER = r"""
import sys, time
sys.path.insert(0, {root!r})
import torchcv.engine.checkpoint as ck
from torchcv.utils import fileio
def slow_atomic_write(path, write):
    import io
    buf = io.BytesIO(); write(buf); data = buf.getvalue()
    def slow(f):
        f.write(data[: len(data) // 2]); f.flush()
        print("WRITING", path, flush=True)
        time.sleep(1.5)
        f.write(data[len(data) // 2:])
    fileio.atomic_write(path, slow)
ck.atomic_write = slow_atomic_write
from torchcv.cli import train_main
sys.exit(train_main(sys.argv[1:]))
"""


def test_sigkill_at_random_moments_never_corrupts(tmp_path, shapes_cls, straight):
    driver = tmp_path / "driver.py"
    driver.write_text(SLOW_WRITER.format(root=ROOT))
    wd = tmp_path / "wd"
    args = [PY, str(driver), CONFIG, "--work-dir", str(wd), "--deterministic", "--resume", *overrides(shapes_cls, 4)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TORCHCV_NO_PROGRESS="1")
    env.setdefault("OMP_NUM_THREADS", "2")  # as run() does for `straight`: bit-exactness needs equal thread counts
    rng = random.Random(0)
    kills_during_write = 0
    for attempt in range(5):
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        during_write = attempt % 2 == 0
        deadline = time.time() + (300 if during_write else rng.uniform(4, 12))  # generous: a loaded machine may take minutes to reach a write
        while time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if during_write and line.startswith("WRITING"):
                time.sleep(0.3)  # mid-write: half the bytes are in the temp file
                kills_during_write += 1
                break
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        # whatever the pointer names must be complete; temp files are never picked up
        found = find_resume_checkpoint(str(wd))
        if found:
            load_checkpoint(found)
    assert kills_during_write >= 2
    final = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert_same_weights(final_weights(straight), final_weights(wd))
    assert train_losses(straight) == train_losses(wd)
    assert not glob.glob(str(wd / "checkpoints" / ".*.tmp")), "stale temp files are cleaned on start"


def test_truncated_checkpoint_is_skipped_by_auto_resume(tmp_path, shapes_cls, straight):
    ckpts = os.path.join(straight, "checkpoints")
    wd = tmp_path / "wd"
    os.makedirs(wd / "checkpoints")
    for n in (3, 4):
        with open(os.path.join(ckpts, f"epoch_{n}.pth"), "rb") as f:
            data = f.read()
        with open(wd / "checkpoints" / f"epoch_{n}.pth", "wb") as f:
            f.write(data if n == 3 else data[: len(data) // 3])
    (wd / "checkpoints" / "last_checkpoint").write_text("epoch_4.pth\n")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(str(wd / "checkpoints" / "epoch_4.pth"))
    assert find_resume_checkpoint(str(wd)).endswith("epoch_3.pth")
    p = train(wd, shapes_cls, 4, "--resume", str(wd / "checkpoints" / "epoch_4.pth"), check=False)
    assert p.returncode == 1 and "truncated or corrupt" in p.stderr and "epoch_4.pth" in p.stderr


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('EVIL_MARKER', '/tmp/torchcv_evil_marker')}",))


def test_checkpoint_that_would_execute_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        torch.save({"model": {"w": torch.zeros(1)}, "payload": Evil()}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(str(path))
    assert not marker.exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(str(plain))
    assert not marker.exists()


def test_fresh_train_refuses_to_mix_with_an_existing_run(tmp_path, shapes_cls, straight):
    p = train(straight, shapes_cls, 4, check=False)
    assert p.returncode == 2 and "already holds checkpoints" in p.stderr and "--resume" in p.stderr
