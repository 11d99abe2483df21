"""int8 classification: torchvision's quantized models load into ours bit-identically; the PTQ tool
writes a file tools/test.py evaluates; architectures torchvision cannot quantize are one-line errors."""
import os
import sys

import pytest
import torch
import torchvision

from torchcv.models.classifiers.image_classifier import ImageClassifier

from conftest import CLS_FAST, ROOT
from test_bad_input import CLS, one_line_error

Q = pytest.importorskip("torchcv.deploy.quantization")
if not Q.available():
    pytest.skip("torch.ao.quantization is gone from this torch: int8 models cannot be built", allow_module_level=True)
ENGINE = "x86" if "x86" in torch.backends.quantized.supported_engines else torch.backends.quantized.engine


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "shufflenet_v2_x0_5"])
def test_torchvision_int8_state_dict_gives_bit_identical_outputs(arch):
    torch.backends.quantized.engine = ENGINE
    torch.manual_seed(0)
    tv = getattr(torchvision.models.quantization, arch)(weights=None, quantize=True, num_classes=10).eval()
    ours = Q.QuantizedImageClassifier(arch, 10, backend=ENGINE)
    ours.net.load_state_dict(tv.state_dict())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ours(x), tv(x))


def test_ptq_tool_writes_a_model_test_py_evaluates(tmp_path, shapes_cls, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import quantize
    from torchcv.cli import test_main
    torch.manual_seed(0)
    weights = tmp_path / "fp32.pth"
    torch.save({"model": ImageClassifier("resnet18", 6).state_dict()}, weights)
    common = [*CLS_FAST, f"data.root={shapes_cls}"]
    rc = quantize.main([CLS, str(weights), "--calib-batches", "2", "--backend", ENGINE, "--out",
                        str(tmp_path / "int8.pth"), *common])
    out = capsys.readouterr().out
    assert rc == 0 and "calibrated on 2 batches" in out and "model.type=QuantizedImageClassifier" in out
    rc = test_main([CLS, str(tmp_path / "int8.pth"), "--work-dir", str(tmp_path / "wd"), "--split", "val", *common,
                    "model.type=QuantizedImageClassifier", "device=cpu", f"+model.backend={ENGINE}"])
    assert rc == 0 and (tmp_path / "wd" / "metrics_val.json").exists()


def test_unquantizable_arch_is_one_line(tmp_path, shapes_cls, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import quantize
    weights = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(1)}, weights)
    rc = quantize.main([CLS, str(weights), *CLS_FAST, f"data.root={shapes_cls}", "model.arch=vgg11"])
    one_line_error(capsys, rc, 2, "torchvision cannot quantize 'vgg11'", "resnet18", "mobilenet_v2")


def test_qat_through_the_trainer_then_int8_evaluates(tmp_path, shapes_cls):
    from torchcv.cli import test_main, train_main
    torch.manual_seed(0)
    fp32 = tmp_path / "fp32.pth"
    torch.save({"model": ImageClassifier("resnet18", 6).state_dict()}, fp32)
    cfg = "configs/cls/shapes/resnet18_shapes_qat.yaml"
    common = [*CLS_FAST, f"data.root={shapes_cls}", f"model.backend={ENGINE}"]
    wd = tmp_path / "qat"
    assert train_main([cfg, "--work-dir", str(wd), *common, f"model.fp32_weights={fp32}", "train.max_epochs=2",
                       "train.plot=false", "custom_hooks.0.freeze_observers_epoch=1"]) == 0
    int8 = wd / "checkpoints" / f"int8_{ENGINE}.pth"
    assert int8.exists()
    # observers frozen from epoch 1: the second epoch left every scale as it was after the first
    last = torch.load(wd / "checkpoints" / "epoch_2.pth", weights_only=True)["model"]
    first = torch.load(wd / "checkpoints" / "epoch_1.pth", weights_only=True)["model"]
    scales = [k for k in last if k.endswith("activation_post_process.scale")]
    assert scales and all(torch.equal(last[k], first[k]) for k in scales)
    assert test_main([cfg, str(int8), "--work-dir", str(tmp_path / "t"), "--split", "val", *common,
                      "model.type=QuantizedImageClassifier"]) == 0
