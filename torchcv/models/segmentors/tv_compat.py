"""Key map from torchvision's segmentation models to ours.

torchvision                                   torchcv (EncoderDecoder)
backbone.<child>...                           backbone.body.<child>...
FCN / aux  classifier.0 | .1 | .4             decode_head.conv.conv | .conv.bn | .cls_seg
           aux_classifier.*                   aux_head.* (same rules)
DeepLabV3  classifier.0.convs.{0-3}.0 | .1    decode_head.aspp.branches.{i}.conv | .bn
           classifier.0.convs.4.1 | .2        decode_head.aspp.branches.4.conv.conv | .conv.bn
           classifier.0.project.0 | .1        decode_head.aspp.project.conv | .bn
           classifier.1 | .2 | .4             decode_head.conv.conv | .conv.bn | .cls_seg
LR-ASPP    classifier.cbr.0 | .1              decode_head.cbr.conv | .bn
           classifier.scale.1                 decode_head.gate
           classifier.low_classifier          decode_head.low_cls
           classifier.high_classifier         decode_head.high_cls
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

import torch
from torch import nn

_FCN = [(r"^{src}\.0\.", "{dst}.conv.conv."), (r"^{src}\.1\.", "{dst}.conv.bn."), (r"^{src}\.4\.", "{dst}.cls_seg.")]
_DEEPLAB = [
    (r"^classifier\.0\.convs\.([0-3])\.0\.", r"decode_head.aspp.branches.\1.conv."),
    (r"^classifier\.0\.convs\.([0-3])\.1\.", r"decode_head.aspp.branches.\1.bn."),
    (r"^classifier\.0\.convs\.4\.1\.", "decode_head.aspp.branches.4.conv.conv."),
    (r"^classifier\.0\.convs\.4\.2\.", "decode_head.aspp.branches.4.conv.bn."),
    (r"^classifier\.0\.project\.0\.", "decode_head.aspp.project.conv."),
    (r"^classifier\.0\.project\.1\.", "decode_head.aspp.project.bn."),
    (r"^classifier\.1\.", "decode_head.conv.conv."),
    (r"^classifier\.2\.", "decode_head.conv.bn."),
    (r"^classifier\.4\.", "decode_head.cls_seg."),
]
_LRASPP = [
    (r"^classifier\.cbr\.0\.", "decode_head.cbr.conv."),
    (r"^classifier\.cbr\.1\.", "decode_head.cbr.bn."),
    (r"^classifier\.scale\.1\.", "decode_head.gate."),
    (r"^classifier\.low_classifier\.", "decode_head.low_cls."),
    (r"^classifier\.high_classifier\.", "decode_head.high_cls."),
]


def _rules(keys: List[str]) -> List[Tuple[str, str]]:
    rules = [(r"^backbone\.", "backbone.body.")]
    rules += [(p.format(src=r"aux_classifier"), r.format(dst="aux_head")) for p, r in _FCN]
    if any(k.startswith("classifier.0.convs.") for k in keys):
        rules += _DEEPLAB
    elif any(k.startswith("classifier.cbr.") for k in keys):
        rules += _LRASPP
    else:
        rules += [(p.format(src=r"classifier"), r.format(dst="decode_head")) for p, r in _FCN]
    return rules


def convert_torchvision_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """torchvision fcn_*/deeplabv3_*/lraspp_* state_dict -> EncoderDecoder state_dict."""
    rules = _rules(list(state))
    out = {}
    for k, v in state.items():
        new = k
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, k)
            if n:
                break
        else:
            raise KeyError(f"tv_compat: no rule maps torchvision key '{k}'")
        out[new] = v
    return out


def load_torchvision_weights(model: nn.Module, path_or_state) -> None:
    """Load torchvision segmentation weights (a path or a state_dict); every key must match."""
    if isinstance(path_or_state, str):
        from ...utils.weights import load_checkpoint
        state = load_checkpoint(path_or_state)
        state = state.get("model", state)
    else:
        state = path_or_state
    own = model.state_dict()
    converted = convert_torchvision_state_dict(state)
    # heads torchvision has but we were built without (e.g. aux) are dropped, never silently mismatched
    converted = {k: v for k, v in converted.items() if not (k.startswith("aux_head.") and model.aux_head is None)}
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    if missing or unexpected:
        raise KeyError(f"torchvision weights do not fit this model: missing {missing[:8]}, unexpected {unexpected[:8]}")
    model.load_state_dict(converted, strict=True)
