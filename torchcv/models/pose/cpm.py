"""Convolutional Pose Machines (Wei, Ramakrishna, Kanade, Sheikh, CVPR 2016), single-person pose on
crops centred on the person.

Stage 1 predicts K keypoint belief maps + background from the image alone (conv + pool blocks down
to stride 8, then a wide head). Stages 2..T each see the image features of a second conv + pool
branch, shared by all of them (one 5x5 conv per stage on top), concatenated with the previous
stage's beliefs and, with ``center_map``, a Gaussian at the crop centre that tells the network which
person to look at. Every stage is supervised (intermediate supervision: the L2 loss of every stage
is summed), which keeps the gradients of the early stages alive.

Train mode: ``model(images, targets)`` with ``targets[i]["keypoints"]`` (N, K, 3) in the crop's pixels
-> ``{"loss_heatmap"}``. Eval mode: ``model(images)`` -> per image ``keypoints`` (1, K, 3: x, y, 1)
at each belief map's maximum (refined below a cell by a quadratic fit), ``keypoints_scores`` (1, K),
``scores`` (1,), ``boxes`` (1, 4), ``labels`` (1,), in the crop's pixels (the evaluator maps them back
to the image), and ``heatmaps`` (K, h, w) with their ``stride``, for pictures.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from ...registry import MODELS, ConfigError
from .common import (IMAGENET_MEAN, IMAGENET_STD, PoseModelBase, conv_stack, init_convs, init_output, masked_mse,
                     pad_to_stride)
from .grouping import keypoint_boxes, subcell_offset
from .targets import center_map, flip_heatmaps, gaussian_heatmaps


def image_branch(channels: Sequence[int], kernel: int, norm: bool) -> nn.Sequential:
    """conv + ReLU + 3x3/2 max-pool per entry: the image down to stride 2**len(channels)."""
    layers: List[nn.Module] = []
    cin = 3
    for c in channels:
        layers += list(conv_stack(cin, [c], [kernel], norm)) + [nn.MaxPool2d(3, stride=2, padding=1)]
        cin = c
    return nn.Sequential(*layers)


@MODELS.register()
class CPM(PoseModelBase):
    """Args:
        num_keypoints: K (16 for MPII, 14 for LSP, 17 for COCO).
        stages: T, the number of belief-map stages (6 in the paper).
        image_channels / image_kernel: the conv + pool blocks of both image branches (paper: three of
            128 channels, 9x9); the output stride is 2 ** len(image_channels).
        stage1_channels / stage1_kernels: stage 1's head before its 1x1 output (paper: 32 5x5, 512 9x9,
            512 1x1).
        feature_channels / feature_kernel: each later stage's conv on the shared image features
            (paper: 32, 5x5).
        stage_channels / stage_kernel / stage_layers: each later stage (paper: three 11x11 convs of
            128, then a 1x1 of 128 and the 1x1 output).
        share_image_features: stage 1 reads the shared image branch too (one branch instead of two:
            the light CPU variant).
        center_map / center_sigma: feed a Gaussian (sigma in input pixels, paper: 21) at the crop centre
            to the later stages.
        sigma: the target Gaussian in input pixels (paper: 7 at 368 px).
        norm: BatchNorm after each hidden conv (not in the paper; trains light variants from scratch
            quickly).
        flip_pairs / flip_test: average the beliefs of the mirrored crop (left/right maps swapped).
    """

    def __init__(self, num_keypoints: int = 16, stages: int = 6, image_channels: Sequence[int] = (128, 128, 128),
                 image_kernel: int = 9, stage1_channels: Sequence[int] = (32, 512, 512),
                 stage1_kernels: Sequence[int] = (5, 9, 1), feature_channels: int = 32, feature_kernel: int = 5,
                 stage_channels: int = 128, stage_kernel: int = 11, stage_layers: int = 3,
                 share_image_features: bool = False, center_map: bool = True, center_sigma: float = 21.0,
                 sigma: float = 7.0, norm: bool = False, flip_pairs: Optional[Sequence[Sequence[int]]] = None,
                 flip_test: bool = False, image_mean: Sequence[float] = IMAGENET_MEAN,
                 image_std: Sequence[float] = IMAGENET_STD):
        super().__init__(num_keypoints, None, flip_pairs, flip_test, image_mean, image_std, need_skeleton=False)
        if stages < 1:
            raise ConfigError(f"CPM.stages={stages}: give at least 1")
        if len(stage1_channels) != len(stage1_kernels):
            raise ConfigError("CPM.stage1_channels and stage1_kernels must have the same length")
        self.stride = 2 ** len(image_channels)
        self.sigma, self.center_sigma, self.use_center = float(sigma), float(center_sigma), center_map
        out = num_keypoints + 1
        self.shared = image_branch(image_channels, image_kernel, norm)
        self.stage1_image = None if share_image_features else image_branch(image_channels, image_kernel, norm)
        self.stage1 = nn.Sequential(conv_stack(image_channels[-1], stage1_channels, stage1_kernels, norm),
                                    nn.Conv2d(stage1_channels[-1], out, 1))
        self.features = nn.ModuleList(conv_stack(image_channels[-1], [feature_channels], [feature_kernel], norm)
                                      for _ in range(stages - 1))
        cin = feature_channels + out + (1 if center_map else 0)
        self.refine = nn.ModuleList(
            nn.Sequential(conv_stack(cin, [stage_channels] * stage_layers + [stage_channels],
                                     [stage_kernel] * stage_layers + [1], norm),
                          nn.Conv2d(stage_channels, out, 1))
            for _ in range(stages - 1))
        init_convs(self.stage1), init_convs(self.refine)
        for head in [self.stage1, *self.refine]:
            init_output(head[-1], background=True)

    def stage_outputs(self, images: Tensor) -> List[Tensor]:
        """Belief maps (B, K+1, h, w) of every stage for padded, unnormalised images."""
        x = self.normalize(images)
        shared = self.shared(x)
        b = self.stage1(shared if self.stage1_image is None else self.stage1_image(x))
        outs = [b]
        centre = None
        if self.use_center and len(self.refine):
            H, W = images.shape[-2:]
            centre = center_map(b.shape[-2:], self.stride, (W / 2, H / 2), self.center_sigma).to(b)
            centre = centre.expand(b.shape[0], 1, -1, -1)
        for feat, stage in zip(self.features, self.refine):
            parts = [feat(shared), b] + ([centre] if centre is not None else [])
            b = stage(torch.cat(parts, 1))
            outs.append(b)
        return outs

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None):
        padded = pad_to_stride(images, self.stride)
        if self.training:
            if targets is None:
                raise ValueError("CPM needs targets in train mode")
            outs = self.stage_outputs(padded)
            grid = outs[0].shape[-2:]
            target = torch.stack([gaussian_heatmaps(t["keypoints"], grid, self.stride, self.sigma)
                                  for t in targets]).to(outs[0])
            return {"loss_heatmap": sum(masked_mse(o, target) for o in outs)}
        beliefs = self.stage_outputs(padded)[-1]
        if self.flip_test:
            flipped = self.stage_outputs(padded.flip(-1))[-1]
            beliefs = (beliefs + flip_heatmaps(flipped, self.flip_index)) / 2
        return [dict(decode_argmax(b[:-1], self.stride), stride=self.stride) for b in beliefs.float()]


def decode_argmax(heatmaps: Tensor, stride: float) -> Dict[str, Tensor]:
    """One person: each map's maximum (refined below a cell by a quadratic fit of the log map), in
    input pixels, with the map's value as the keypoint's score."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    scores, idx = flat.max(1)
    logs = heatmaps.clamp(min=1e-10).log()
    kp = torch.zeros(k, 3)
    for j in range(k):
        y, x = divmod(int(idx[j]), w)
        dx, dy = subcell_offset(logs[j, y, :], x), subcell_offset(logs[j, :, x], y)
        kp[j] = torch.tensor([(x + 0.5 + dx) * stride, (y + 0.5 + dy) * stride, 1.0])
    kp = kp[None]
    return {"keypoints": kp, "keypoints_scores": scores[None].cpu(), "scores": scores.mean()[None].cpu(),
            "boxes": keypoint_boxes(kp), "labels": torch.ones(1, dtype=torch.int64), "heatmaps": heatmaps.cpu()}
