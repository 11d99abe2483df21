"""Keypoint branch of the RoI heads (Keypoint R-CNN): RoIAlign -> a 3x3 conv tower -> a 4x4/2
transposed conv and 2x bilinear upsampling to one heatmap per keypoint; the loss is a softmax
cross-entropy over each heatmap's pixels at the ground-truth location; inference takes each
heatmap's maximum, resized to the box (bicubic) as torchvision does, as the keypoint and its score.

Module names and arithmetic follow torchvision's (``keypoint_head.{0,2,...}``,
``keypoint_predictor.kps_score_lowres``) so its state_dict loads and gives the same keypoints.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ...registry import HEADS
from .roi_heads import RoIBranch


class KeypointRCNNHeads(nn.Sequential):
    """3x3 conv + ReLU per entry of ``layers`` (flat: conv at even indices, like torchvision's)."""

    def __init__(self, in_channels: int, layers: Sequence[int] = (512,) * 8):
        blocks: List[nn.Module] = []
        for cout in layers:
            blocks += [nn.Conv2d(in_channels, cout, 3, stride=1, padding=1), nn.ReLU(inplace=True)]
            in_channels = cout
        super().__init__(*blocks)
        self.out_channels = in_channels
        for m in self.children():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)


class KeypointRCNNPredictor(nn.Module):
    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.kps_score_lowres = nn.ConvTranspose2d(in_channels, num_keypoints, 4, stride=2, padding=1)
        nn.init.kaiming_normal_(self.kps_score_lowres.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.kps_score_lowres.bias, 0)
        self.out_channels = num_keypoints

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.kps_score_lowres(x), scale_factor=2.0, mode="bilinear", align_corners=False,
                             recompute_scale_factor=False)


def keypoints_to_heatmap(keypoints: Tensor, rois: Tensor, size: int) -> Tuple[Tensor, Tensor]:
    """Flat index of each keypoint's cell on a ``size`` x ``size`` grid over its RoI, and whether it
    counts (visible and inside the RoI; a keypoint on the RoI's right/bottom edge goes to the last cell)."""
    x0, y0 = rois[:, 0][:, None], rois[:, 1][:, None]
    sx = (size / (rois[:, 2] - rois[:, 0]))[:, None]
    sy = (size / (rois[:, 3] - rois[:, 1]))[:, None]
    x, y = keypoints[..., 0], keypoints[..., 1]
    on_right = x == rois[:, 2][:, None]
    on_bottom = y == rois[:, 3][:, None]
    x = ((x - x0) * sx).floor().long()
    y = ((y - y0) * sy).floor().long()
    x[on_right] = size - 1
    y[on_bottom] = size - 1
    valid = ((x >= 0) & (y >= 0) & (x < size) & (y < size) & (keypoints[..., 2] > 0)).long()
    return (y * size + x) * valid, valid


def keypoint_loss(logits: Tensor, proposals: List[Tensor], gt_keypoints: List[Tensor],
                  matched: List[Tensor]) -> Tensor:
    n, k, h, w = logits.shape
    targets, valid = [], []
    for props, kps, idx in zip(proposals, gt_keypoints, matched):
        t, v = keypoints_to_heatmap(kps[idx], props, h)
        targets.append(t.view(-1))
        valid.append(v.view(-1))
    targets_cat = torch.cat(targets)
    valid_idx = torch.where(torch.cat(valid).to(torch.uint8))[0]
    if targets_cat.numel() == 0 or valid_idx.numel() == 0:  # no person, or no labelled keypoint: no signal
        return logits.sum() * 0
    return F.cross_entropy(logits.view(n * k, h * w)[valid_idx], targets_cat[valid_idx])


def heatmaps_to_keypoints(maps: Tensor, rois: Tensor) -> Tuple[Tensor, Tensor]:
    """(K, N, 3) keypoints (x, y, 1) and (K, N) scores from (K, N, H, W) heatmaps over ``rois``: each
    heatmap is resized to its box (bicubic) and its maximum taken at the cell centre (c = d + 0.5)."""
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()
    num = maps.shape[1]
    xy = torch.zeros((len(rois), 3, num), dtype=torch.float32, device=maps.device)
    scores = torch.zeros((len(rois), num), dtype=torch.float32, device=maps.device)
    for i in range(len(rois)):
        rw, rh = int(widths_ceil[i].item()), int(heights_ceil[i].item())
        roi_map = F.interpolate(maps[i][:, None], size=(rh, rw), mode="bicubic", align_corners=False)[:, 0]
        pos = roi_map.reshape(num, -1).argmax(dim=1)
        x_int = pos % rw
        y_int = torch.div(pos - x_int, rw, rounding_mode="floor")
        xy[i, 0] = (x_int.float() + 0.5) * (widths[i] / rw) + rois[i, 0]
        xy[i, 1] = (y_int.float() + 0.5) * (heights[i] / rh) + rois[i, 1]
        xy[i, 2] = 1
        scores[i] = roi_map[torch.arange(num, device=roi_map.device), y_int, x_int]
    return xy.permute(0, 2, 1), scores


@HEADS.register()
class KeypointBranch(RoIBranch):
    """Args:
        num_keypoints: K (17 for COCO persons).
        layers: channels of the 3x3 conv tower (torchvision: eight of 512).
        output_size / sampling_ratio: the RoIAlign of the branch (14 -> 56x56 heatmaps).
    Outputs ``keypoints`` (N, K, 3: x, y, 1) and ``keypoints_scores`` (N, K) per detection."""

    name = "keypoint"
    target_keys = ("keypoints",)

    def __init__(self, num_keypoints: int = 17, layers: Sequence[int] = (512,) * 8, output_size: int = 14,
                 sampling_ratio: int = 2):
        if num_keypoints < 1:
            from ...registry import ConfigError
            raise ConfigError(f"KeypointBranch.num_keypoints={num_keypoints}: must be >= 1")
        self.num_keypoints = int(num_keypoints)
        self.layers, self.output_size, self.sampling_ratio = list(layers), output_size, sampling_ratio

    def build(self, in_channels: int, num_classes: int, featmap_names: Sequence[str]) -> Dict[str, nn.Module]:
        head = KeypointRCNNHeads(in_channels, self.layers)
        return {"roi_pool": ops.MultiScaleRoIAlign(list(featmap_names), self.output_size, self.sampling_ratio),
                "head": head, "predictor": KeypointRCNNPredictor(head.out_channels, self.num_keypoints)}

    def check_targets(self, targets: List[Dict[str, Tensor]]) -> None:
        super().check_targets(targets)
        for i, t in enumerate(targets):
            kp = t["keypoints"]
            if kp.dim() != 3 or kp.shape[-1] != 3 or kp.shape[0] != t["boxes"].shape[0]:
                raise ValueError(f"target {i}: keypoints must be (N, K, 3) for its {t['boxes'].shape[0]} boxes, got "
                                 f"{tuple(kp.shape)}")
            if kp.shape[1] != self.num_keypoints:
                raise ValueError(f"target {i} has {kp.shape[1]} keypoints per instance but the model predicts "
                                 f"{self.num_keypoints}: set the model's num_keypoints to {kp.shape[1]}")

    def _logits(self, features, boxes, image_sizes) -> Tensor:
        return self.predictor(self.head(self.roi_pool(features, boxes, image_sizes)))

    def loss(self, features, proposals, image_sizes, targets, matched) -> Dict[str, Tensor]:
        logits = self._logits(features, proposals, image_sizes)
        return {"loss_keypoint": keypoint_loss(logits, proposals, [t["keypoints"] for t in targets], matched)}

    def predict(self, features, results, image_sizes) -> None:
        boxes = [r["boxes"] for r in results]
        logits = self._logits(features, boxes, image_sizes)
        for r, maps, b in zip(results, logits.split([len(x) for x in boxes], dim=0), boxes):
            r["keypoints"], r["keypoints_scores"] = heatmaps_to_keypoints(maps, b)
