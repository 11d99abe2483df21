"""Backbone + decode head (+ auxiliary head) segmentor, and torchvision-named builders.

Train mode: ``model(images, targets)`` -> ``{"loss_seg": ..., "loss_aux": ...}`` (the auxiliary
loss already multiplied by ``aux_weight``). Eval mode: ``model(images)`` -> logits ``[B, C, H, W]``
at the input size (bilinear, ``align_corners=False``, as torchvision).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from ..backbones.features import FeatureBackbone
from ..heads.ann_head import ANNHead
from ..heads.seg_heads import ASPPHead, DenseASPPHead, FCNHead, LRASPPHead, PSPHead
from ..losses.seg_losses import SegCrossEntropyLoss


@MODELS.register()
class EncoderDecoder(nn.Module):
    """Args:
        backbone: a module returning a dict of feature maps (``FeatureBackbone``, tapped by level or by child).
        decode_head: a head reading that dict (``FCNHead``, ``ASPPHead``, ``LRASPPHead``, ``PSPHead``,
            ``DenseASPPHead``, ``ANNHead``).
        aux_head: optional auxiliary head (training only; skipped at inference).
        loss: pixel loss module (default ``SegCrossEntropyLoss(ignore_index=255)``).
        aux_weight: weight of the auxiliary loss.
        init_from_torchvision: local path to a torchvision segmentation state_dict
            (e.g. deeplabv3_resnet50 weights); keys are mapped by ``tv_compat``.
        channels_last: keep weights and activations in NHWC layout; oneDNN (CPU) and cuDNN run the
            dilated convolutions faster that way (about 10% per training step on CPU, see
            benchmarks/seg_cpu.md). Results are the same up to float rounding.
    """

    def __init__(self, backbone: nn.Module, decode_head: nn.Module, aux_head: Optional[nn.Module] = None,
                 loss: Optional[nn.Module] = None, aux_weight: float = 0.5,
                 init_from_torchvision: Optional[str] = None, channels_last: bool = True):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        self.aux_head = aux_head
        self.loss = loss if loss is not None else SegCrossEntropyLoss()
        self.aux_weight = aux_weight
        self.num_classes = decode_head.num_classes
        if init_from_torchvision:
            from .tv_compat import load_torchvision_weights
            load_torchvision_weights(self, init_from_torchvision)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)  # 4-D weights; load_state_dict keeps the layout

    def forward_logits(self, images: torch.Tensor, with_aux: bool = False) -> Dict[str, torch.Tensor]:
        size = images.shape[-2:]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(images)
        out = {"out": F.interpolate(self.decode_head(feats), size=size, mode="bilinear", align_corners=False)}
        if with_aux and self.aux_head is not None:
            out["aux"] = F.interpolate(self.aux_head(feats), size=size, mode="bilinear", align_corners=False)
        return out

    def forward(self, images: torch.Tensor, targets: Optional[torch.Tensor] = None):
        if not self.training:
            return self.forward_logits(images)["out"]
        if targets is None:
            raise ValueError("EncoderDecoder in train mode needs targets: call model(images, targets)")
        out = self.forward_logits(images, with_aux=True)
        targets = targets.long()
        losses = {"loss_seg": self.loss(out["out"], targets)}
        if "aux" in out:
            losses["loss_aux"] = self.aux_weight * self.loss(out["aux"], targets)
        return losses


# ---- builders with torchvision's names (and the same module layout behind the key map) -----------------
def _resnet(arch: str, output_stride: int, pretrained_backbone: Optional[str], norm: str) -> FeatureBackbone:
    dil = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}[output_stride]
    return FeatureBackbone(arch, out_indices=(3, 4), pretrained=pretrained_backbone, norm=norm, probe_size=64,
                           arch_kwargs={"replace_stride_with_dilation": dil})


def _mobilenet(taps: Dict[str, str], pretrained_backbone: Optional[str], norm: str) -> FeatureBackbone:
    # torchvision: "out"/"high" = features[16] (C5, stride 16 with dilation), "aux"/"low" = features[4]
    # (first block of the stride-8 stage)
    return FeatureBackbone("mobilenet_v3_large", return_layers=taps, output_stride=16,
                            pretrained=pretrained_backbone, norm=norm)


def _make(head: str, arch: str):
    resnet = arch.startswith("resnet")

    def build(num_classes: int = 21, aux_loss: bool = True, output_stride: int = 8, aux_weight: float = 0.5,
              pretrained_backbone: Optional[str] = None, norm: str = "bn", loss: Optional[nn.Module] = None,
              init_from_torchvision: Optional[str] = None, channels_last: bool = True) -> EncoderDecoder:
        if resnet:
            backbone, hi, lo = _resnet(arch, output_stride, pretrained_backbone, norm), "4", "3"
        else:
            backbone, hi, lo = _mobilenet({"4": "aux", "16": "out"}, pretrained_backbone, norm), "out", "aux"
        c_hi, c_lo = (2048, 1024) if resnet else (960, 40)
        if head == "lraspp":
            decode = LRASPPHead(c_lo, c_hi, num_classes, low_key=lo, high_key=hi)
            aux_loss = False
        elif head == "fcn":
            decode = FCNHead(c_hi, num_classes, in_key=hi)
        elif head == "deeplabv3":
            decode = ASPPHead(c_hi, num_classes, in_key=hi)
        elif head == "pspnet":
            decode = PSPHead(c_hi, num_classes, in_key=hi)
        elif head == "ann":
            decode = ANNHead(c_lo, c_hi, num_classes, low_key=lo, high_key=hi)
        else:
            decode = DenseASPPHead(c_hi, num_classes, in_key=hi)
        aux = FCNHead(c_lo, num_classes, in_key=lo) if aux_loss else None
        return EncoderDecoder(backbone, decode, aux, loss=loss, aux_weight=aux_weight,
                              init_from_torchvision=init_from_torchvision, channels_last=channels_last)

    build.__name__ = f"{head}_{arch}"
    build.__doc__ = (f"{head} on a dilated {arch} (output_stride for ResNets: 8 or 16). With the same weights "
                     f"(see tv_compat) it computes what torchvision's model of this name computes.")
    return build


for _head, _arch in [("fcn", "resnet50"), ("fcn", "resnet101"), ("deeplabv3", "resnet50"), ("deeplabv3", "resnet101"),
                     ("deeplabv3", "mobilenet_v3_large"), ("lraspp", "mobilenet_v3_large"),
                     ("pspnet", "resnet50"), ("pspnet", "resnet101"), ("denseaspp", "resnet50"),
                     ("denseaspp", "resnet101"), ("ann", "resnet50"), ("ann", "resnet101")]:
    MODELS.register(f"{_head}_{_arch}", obj=_make(_head, _arch))
