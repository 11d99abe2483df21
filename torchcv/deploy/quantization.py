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

import importlib
from typing import Iterable, Optional

import torch
from torch import nn

from ..registry import MODELS, ConfigError
from ..utils.errors import CheckpointError

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


def convert(net: nn.Module) -> nn.Module:
    return ao().convert(net.eval(), inplace=True)


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
    wrote. Takes ImageClassifier's arguments (the training-only ones are ignored) and ``backend``."""

    def __init__(self, arch: str, num_classes: int, backend: str = "x86", pretrained: Optional[str] = None,
                 arch_kwargs: Optional[dict] = None, label_smoothing: float = 0.0, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 0.0, aux_weight: float = 0.4):
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
