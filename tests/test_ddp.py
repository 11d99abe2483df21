"""torchrun with 2 CPU processes (gloo) == one process with the same global batch: on one machine
(NGPUS=2) and as two "nodes" of one process each on the loopback address (NNODES=2)."""
import json
import os
import socket
import subprocess

import pytest
import torch

from torchcv.engine.checkpoint import load_checkpoint

from conftest import ROOT, run

SCRIPT = "scripts/cls/shapes/run_resnet18_shapes.sh"
# no BatchNorm and no dropout or random augmentation: the two runs must then agree to float precision
COMMON = ["model.arch=squeezenet1_1", "+model.arch_kwargs={dropout: 0.0}", "data.num_workers=0",
          "data.train.transforms=${data.val.transforms}", "train.max_epochs=2",
          # SGD: Adam's per-element normalisation would amplify float-rounding differences of tiny gradients
          "optimizer={type: SGD, lr: 0.01, momentum: 0.9}",
          "lr_schedule.warmup_iters=5", "train.log_interval=5"]


@pytest.fixture(scope="module")
def single(tmp_path_factory, shapes_cls):
    root = tmp_path_factory.mktemp("ddp")
    env = {"WORK_ROOT": str(root), "TORCHCV_SHAPES_CLS": shapes_cls}
    run(["bash", SCRIPT, "train", "single", "data.batch_size=16", *COMMON], env=env)
    return root, env


def compare(root, name, world_size):
    base = os.path.join(root, "cls", "shapes", "resnet18")
    a = load_checkpoint(os.path.join(base, "single", "checkpoints", "epoch_2.pth"))
    b = load_checkpoint(os.path.join(base, name, "checkpoints", "epoch_2.pth"))
    assert a["meta"]["iter"] == b["meta"]["iter"] == 2 * 15
    assert b["meta"]["world_size"] == world_size
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5, msg=k)

    def val(n):
        with open(os.path.join(base, n, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f if '"val"' in line]
    va, vb = val("single"), val(name)
    assert len(va) == len(vb) == 2
    for x, y in zip(va, vb):  # metrics reduced across ranks cover the whole val set once
        assert abs(x["top1"] - y["top1"]) < 1e-6


def test_two_process_ddp_matches_single_process(single):
    root, env = single
    ddp = run(["bash", SCRIPT, "train", "ddp", "data.batch_size=8", *COMMON], env={**env, "NGPUS": "2"})
    assert "x2 processes" in ddp.stdout
    compare(root, "ddp", 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_match_single_process(single):
    root, env = single
    nodes = {"NNODES": "2", "NGPUS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    full = dict(os.environ, PYTHONUNBUFFERED="1", TORCHCV_NO_PROGRESS="1", OMP_NUM_THREADS="1", **env, **nodes)
    procs = [subprocess.Popen(["bash", SCRIPT, "train", "nodes", "data.batch_size=8", *COMMON], cwd=ROOT,
                              env=dict(full, NODE_RANK=str(rank)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for rank in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-3000:]
    assert "x2 processes" in outs[0][0]
    compare(root, "nodes", 2)
