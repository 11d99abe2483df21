"""int8 classification models: the one module that touches ``torch.ao.quantization``.

torch.ao.quantization (eager-mode static quantization, what torchvision's quantized models use)
announces its removal; keeping every use here means one place to port, and ``available()`` lets
callers and tests say clearly when it is gone.

Flow (torchvision's ``references/classification/train_quantization.py``): build torchvision's
*quantizable* variant of the architecture (same fp32 state_dict keys as ours), load the fp32
weights, fuse conv+bn(+relu), attach a qconfig for the backend, insert observers, calibrate on
data, convert to int8.
"""
from __future__ import annotations

import copy
import importlib
import os
from collections import OrderedDict
from typing import Dict, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.hooks import Hook
from ..registry import HOOKS, MODELS, ConfigError
from ..utils.errors import CheckpointError
from ..utils.weights import load_weights, unwrap

# torchvision.models.quantization builders (the seed's quantized model list)
QUANTIZABLE = ("googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "resnet18", "resnet50",
               "resnext101_32x8d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
               "shufflenet_v2_x2_0")
BACKENDS = ("x86", "fbgemm", "qnnpack")


def ao():
    """``torch.ao.quantization``, or a clear error when this torch no longer has it."""
    try:
        return importlib.import_module("torch.ao.quantization")
    except ImportError as e:
        raise RuntimeError(f"torch.ao.quantization is not available in torch {torch.__version__} ({e}); "
                           f"int8 models need a torch that still ships it") from None


def available() -> bool:
    try:
        ao()
        return True
    except RuntimeError:
        return False


def check_arch(arch: str) -> None:
    if arch not in QUANTIZABLE:
        raise ConfigError(f"model.arch: torchvision cannot quantize '{arch}' (no quantizable variant in "
                          f"torchvision.models.quantization); quantizable: {', '.join(QUANTIZABLE)}")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend not in torch.backends.quantized.supported_engines:
        raise ConfigError(f"--backend {backend}: this torch build supports {torch.backends.quantized.supported_engines}")


def quantizable_net(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """torchvision's quantizable fp32 network for ``arch`` (eval mode, not yet fused)."""
    check_arch(arch)
    import torchvision.models.quantization as tvq

    if arch in ("inception_v3", "googlenet"):
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", False)
    return getattr(tvq, arch)(weights=None, quantize=False, num_classes=num_classes, **kwargs).eval()


def prepare_static(net: nn.Module, backend: str) -> nn.Module:
    """Fuse, attach the backend's qconfig and insert observers (post-training static quantization)."""
    check_backend(backend)
    q = ao()
    torch.backends.quantized.engine = backend
    net.eval()
    net.fuse_model(is_qat=False)
    net.qconfig = q.get_default_qconfig(backend)
    return q.prepare(net, inplace=True)


def prepare_qat(net: nn.Module, backend: str) -> nn.Module:
    """Fuse for training (conv+bn kept as one module with fake-quantized weights), attach the
    backend's QAT qconfig and insert fake-quantize modules."""
    check_backend(backend)
    q = ao()
    torch.backends.quantized.engine = backend
    net.train()
    net.fuse_model(is_qat=True)
    net.qconfig = q.get_default_qat_qconfig(backend)
    return q.prepare_qat(net, inplace=True)


def convert(net: nn.Module) -> nn.Module:
    return ao().convert(net.eval(), inplace=True)


def int8_state_dict(net: nn.Module, prefix: str = "net.") -> Dict[str, object]:
    """A converted network's state_dict under ``prefix``, module versions kept (quantized layers read
    their packed parameters by version)."""
    sd = net.state_dict()
    state = OrderedDict((prefix + k, v) for k, v in sd.items())
    state._metadata = OrderedDict((prefix + k if k else prefix.rstrip("."), v) for k, v in sd._metadata.items())
    return state


@torch.no_grad()
def calibrate(net: nn.Module, batches: Iterable[torch.Tensor], limit: Optional[int] = None) -> int:
    n = 0
    for images in batches:
        if limit is not None and n >= limit:
            break
        net(images)
        n += 1
    return n


@MODELS.register()
class QuantizedImageClassifier(nn.Module):
    """An int8 ImageClassifier (CPU, eval only) for ``tools/test.py`` / ``tools/demo.py``:
    ``model.type=QuantizedImageClassifier`` on the fp32 config plus the file ``tools/quantize.py``
    wrote (or QATHook). Takes the arguments of ImageClassifier / QATImageClassifier (the training-only
    ones are ignored, so the training config serves as it is) and ``backend``."""

    def __init__(self, arch: str, num_classes: int, backend: str = "x86", pretrained: Optional[str] = None,
                 arch_kwargs: Optional[dict] = None, label_smoothing: float = 0.0, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 0.0, aux_weight: float = 0.4, fp32_weights: Optional[str] = None):
        super().__init__()
        self.arch, self.num_classes, self.backend = arch, num_classes, backend
        self.net = convert(prepare_static(quantizable_net(arch, num_classes, **(arch_kwargs or {})), backend))
        self.eval()

    def forward(self, images: torch.Tensor, targets=None):
        if self.training:
            raise RuntimeError("QuantizedImageClassifier is inference only; train the fp32 model (or use QAT)")
        torch.backends.quantized.engine = self.backend
        return self.net(images)

    def train(self, mode: bool = True):
        return super().train(False) if mode else super().train(mode)

    def load_torchcv_weights(self, path: str):
        """int8 state_dicts hold packed (non-tensor) parameters: strict load of the whole file."""
        from ..utils.weights import load_checkpoint

        state = load_checkpoint(path)
        state = state.get("model", state)
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{path} is not an int8 {self.arch} with {self.num_classes} classes written by "
                                  f"tools/quantize.py: {str(e).splitlines()[0][:200]}") from None
        return {"missing": [], "unexpected": [], "mismatched": []}


@MODELS.register()
class QATImageClassifier(nn.Module):
    """Quantization-aware training of a classifier through the normal trainer.

    Builds torchvision's quantizable ``arch``, loads fp32 weights (``fp32_weights``: an ImageClassifier
    checkpoint, or ``pretrained``: a torchvision-layout file or ``torchvision://`` name), fuses and
    inserts fake quantization. Train mode returns ``loss_cls``; eval mode returns logits of the
    fake-quantized network (close to what the int8 model gives). ``QATHook`` freezes observers and
    BatchNorm statistics after set epochs and writes the converted int8 model at the end."""

    def __init__(self, arch: str, num_classes: int, fp32_weights: Optional[str] = None,
                 pretrained: Optional[str] = None, backend: str = "x86", label_smoothing: float = 0.0,
                 arch_kwargs: Optional[dict] = None, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 aux_weight: float = 0.4):
        super().__init__()
        if mixup_alpha or cutmix_alpha:
            raise ConfigError("QATImageClassifier: mixup/cutmix are not supported in QAT fine-tuning; set them to 0")
        self.arch, self.num_classes, self.backend = arch, num_classes, backend
        self.label_smoothing = label_smoothing
        net = quantizable_net(arch, num_classes, **(arch_kwargs or {}))
        if fp32_weights:
            load_weights(net, fp32_weights, key_map={"net.": ""})  # an ImageClassifier checkpoint
        elif pretrained:
            load_weights(net, pretrained)
        self.net = prepare_qat(net, backend)

    def forward(self, images: torch.Tensor, targets: Optional[torch.Tensor] = None):
        out = self.net(images)
        if not self.training:
            return out
        if targets is None:
            raise ValueError("QATImageClassifier in train mode needs targets: model(images, labels)")
        return {"loss_cls": F.cross_entropy(out, targets, label_smoothing=self.label_smoothing)}

    def int8(self) -> nn.Module:
        """A converted int8 copy (CPU, eval) of the network as it is now."""
        return convert(copy.deepcopy(self.net).cpu())


@HOOKS.register()
class QATHook(Hook):
    """QAT schedule (torchvision's train_quantization.py): from epoch ``freeze_observers_epoch`` the
    quantization ranges stop moving, from ``freeze_bn_epoch`` BatchNorm uses its running statistics;
    at the end the int8 model is written to ``checkpoints/int8_<backend>.pth`` (evaluate it with
    ``tools/test.py CONFIG FILE model.type=QuantizedImageClassifier device=cpu``). The freezes are
    re-applied from the epoch number at every epoch start, so a resumed run is in the same state."""

    priority = 15

    def __init__(self, freeze_observers_epoch: int = 4, freeze_bn_epoch: int = 3, save_int8: bool = True):
        self.freeze_observers_epoch = freeze_observers_epoch
        self.freeze_bn_epoch = freeze_bn_epoch
        self.save_int8 = save_int8

    def _model(self, trainer) -> QATImageClassifier:
        model = unwrap(trainer.model)
        if not isinstance(model, QATImageClassifier):
            raise ConfigError(f"custom_hooks QATHook: the model is {type(model).__name__}; use "
                              f"model.type=QATImageClassifier")
        return model

    def before_run(self, trainer):
        self._model(trainer)

    def before_epoch(self, trainer):
        net = self._model(trainer).net
        if trainer.epoch >= self.freeze_observers_epoch:
            net.apply(ao().disable_observer)
        if trainer.epoch >= self.freeze_bn_epoch:
            net.apply(importlib.import_module("torch.ao.nn.intrinsic.qat").freeze_bn_stats)

    def after_run(self, trainer):
        from ..engine.checkpoint import save_checkpoint
        from ..utils import dist

        if not self.save_int8 or not dist.is_main():
            return
        model = trainer.ema.module if trainer.ema else self._model(trainer)
        path = os.path.join(trainer.ckpt_dir, f"int8_{model.backend}.pth")
        save_checkpoint(path, {"model": int8_state_dict(model.int8()), "meta": {"arch": model.arch,
                        "backend": model.backend, "epoch": trainer.epoch}, "config": trainer.cfg.dump()})
        trainer.model.train()
        from ..engine.logger import logger
        logger.info("int8 model written to %s (evaluate: tools/test.py CONFIG %s model.type=QuantizedImageClassifier "
                    "device=cpu)", path, path)
