"""torchrun with 2 CPU processes (gloo) == one process with the same global batch."""
import json
import os

import torch

from torchcv.engine.checkpoint import load_checkpoint

from conftest import run

SCRIPT = "scripts/cls/shapes/run_resnet18_shapes.sh"
# no BatchNorm and no dropout or random augmentation: the two runs must then agree to float precision
COMMON = ["model.arch=squeezenet1_1", "+model.arch_kwargs={dropout: 0.0}", "data.num_workers=0",
          "data.train.transforms=${data.val.transforms}", "train.max_epochs=2",
          # SGD: Adam's per-element normalisation would amplify float-rounding differences of tiny gradients
          "optimizer={type: SGD, lr: 0.01, momentum: 0.9}",
          "lr_schedule.warmup_iters=5", "train.log_interval=5"]


def test_two_process_ddp_matches_single_process(tmp_path, shapes_cls):
    env = {"WORK_ROOT": str(tmp_path), "TORCHCV_SHAPES_CLS": shapes_cls}
    run(["bash", SCRIPT, "train", "single", "data.batch_size=16", *COMMON], env=env)
    ddp = run(["bash", SCRIPT, "train", "ddp", "data.batch_size=8", *COMMON], env={**env, "NGPUS": "2"})
    assert "x2 processes" in ddp.stdout
    base = os.path.join(tmp_path, "cls", "shapes", "resnet18")
    a = load_checkpoint(os.path.join(base, "single", "checkpoints", "epoch_2.pth"))
    b = load_checkpoint(os.path.join(base, "ddp", "checkpoints", "epoch_2.pth"))
    assert a["meta"]["iter"] == b["meta"]["iter"] == 2 * 15
    assert b["meta"]["world_size"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5, msg=k)

    def val(name):
        with open(os.path.join(base, name, "metrics.jsonl")) as f:
            return [json.loads(l) for l in f if '"val"' in l]
    va, vb = val("single"), val("ddp")
    assert len(va) == len(vb) == 2
    for x, y in zip(va, vb):  # metrics reduced across ranks cover the whole val set once
        assert abs(x["top1"] - y["top1"]) < 1e-6
