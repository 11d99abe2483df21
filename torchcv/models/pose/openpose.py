"""OpenPose: realtime multi-person 2D pose estimation using part affinity fields (Cao, Simon, Wei,
Sheikh, CVPR 2017), bottom-up.

A trunk (VGG-19's first ten convs + two adapter convs in the paper, or the light CPU trunk) gives
features F at stride 8. Stage 1 has two branches on F: one predicts the part affinity fields (a 2D
vector field per limb of the skeleton), the other the keypoint heatmaps + background. Stages 2..T
see F concatenated with the previous stage's fields and heatmaps. Every stage of both branches is
supervised with an L2 loss masked where people are unlabelled or crowds (``ignore_mask``), so
unannotated people do not teach "background".

Train mode: ``model(images, targets)``; ``targets[i]``: ``keypoints`` (N, K, 3) and optionally
``ignore_mask`` (H, W, non-zero = ignore) -> ``{"loss_paf", "loss_heatmap"}`` (summed over stages).
Eval mode: ``model(images)`` -> per image the people found by the grouping of ``grouping.py``
(``keypoints`` (P, K, 3), ``keypoints_scores``, ``scores``, ``boxes``, ``labels``), and for pictures
the final ``heatmaps`` (K, h, w) and ``pafs`` (2L, h, w) on the padded input's grid, with its
``stride``. ``test_scales`` averages the maps of resized inputs; ``flip_test`` those of the mirrored
input (left/right channels swapped).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS, ConfigError
from .common import (IMAGENET_MEAN, IMAGENET_STD, PoseModelBase, conv_stack, init_convs, init_output, masked_mse,
                     pad_to_stride)
from .grouping import group_people
from .targets import flip_heatmaps, flip_pafs, gaussian_heatmaps, part_affinity_fields


def _branch(cin: int, channels: int, layers: int, kernel: int, hidden: int, out: int, norm: bool) -> nn.Sequential:
    body = conv_stack(cin, [channels] * layers + [hidden], [kernel] * layers + [1], norm)
    return nn.Sequential(body, nn.Conv2d(hidden, out, 1))


@MODELS.register()
class OpenPose(PoseModelBase):
    """Args:
        backbone: a feature extractor returning a dict of maps (the last one is used), e.g.
            ``{type: FeatureBackbone, arch: vgg19, return_layers: {"22": c4}}`` (conv4_2, stride 8) or
            ``{type: PoseLightTrunk}``; its ``out_channels`` / ``out_strides`` give F's width and stride.
        num_keypoints / skeleton / flip_pairs: the dataset's keypoints (0-based limbs and left/right
            pairs; COCO's 17 by default). The PAF branch predicts 2 maps per limb.
        feature_channels: 3x3 adapter convs on the trunk (paper: conv4_3_CPM 256, conv4_4_CPM 128).
        stages: T (paper: 6).
        stage1_channels / stage1_layers / stage1_hidden: stage 1 branches (paper: three 3x3 of 128,
            a 1x1 of 512, the 1x1 output).
        stage_channels / stage_layers / stage_kernel: stages 2..T (paper: five 7x7 of 128, a 1x1 of
            128, the 1x1 output).
        norm: BatchNorm after hidden stage convs (not in the paper; for light from-scratch variants).
        sigma: heatmap Gaussian (input pixels, paper: 7); paf_width: half-width of a limb's field
            (input pixels; default: the stride).
        test_scales / flip_test: inference averaging; peak_threshold, paf_threshold, paf_samples,
            min_aligned, min_parts, min_score: grouping (see grouping.py).
    """

    def __init__(self, backbone: nn.Module, num_keypoints: int = 17, skeleton: Optional[Sequence[Sequence[int]]] = None,
                 flip_pairs: Optional[Sequence[Sequence[int]]] = None, feature_channels: Sequence[int] = (256, 128),
                 stages: int = 6, stage1_channels: int = 128, stage1_layers: int = 3, stage1_hidden: int = 512,
                 stage_channels: int = 128, stage_layers: int = 5, stage_kernel: int = 7, norm: bool = False,
                 sigma: float = 7.0, paf_width: Optional[float] = None, test_scales: Sequence[float] = (1.0,),
                 flip_test: bool = False, peak_threshold: float = 0.1, paf_threshold: float = 0.05,
                 paf_samples: int = 10, min_aligned: float = 0.8, min_parts: int = 3, min_score: float = 0.2,
                 image_mean: Sequence[float] = IMAGENET_MEAN, image_std: Sequence[float] = IMAGENET_STD):
        super().__init__(num_keypoints, skeleton, flip_pairs, flip_test, image_mean, image_std, need_skeleton=True)
        if stages < 1:
            raise ConfigError(f"OpenPose.stages={stages}: give at least 1")
        if not test_scales or min(float(s) for s in test_scales) <= 0:
            raise ConfigError(f"OpenPose.test_scales={list(test_scales)}: give positive factors, e.g. [1.0]")
        channels, strides = getattr(backbone, "out_channels", None), getattr(backbone, "out_strides", None)
        if not channels or not strides:
            raise ConfigError(f"OpenPose.backbone: {type(backbone).__name__} does not report out_channels / "
                              f"out_strides; use FeatureBackbone or PoseLightTrunk")
        self.backbone = backbone
        self.stride = int(strides[-1])
        self.sigma = float(sigma)
        self.paf_width = float(paf_width) if paf_width is not None else float(self.stride)
        self.test_scales = [float(s) for s in test_scales]
        self.grouping = dict(peak_threshold=peak_threshold, paf_threshold=paf_threshold, samples=paf_samples,
                             min_aligned=min_aligned, min_parts=min_parts, min_score=min_score)
        self.adapter = conv_stack(channels[-1], list(feature_channels), [3] * len(feature_channels), norm) \
            if feature_channels else nn.Identity()
        cf = feature_channels[-1] if feature_channels else channels[-1]
        n_paf, n_heat = 2 * len(self.skeleton), num_keypoints + 1
        self.paf_stages = nn.ModuleList([_branch(cf, stage1_channels, stage1_layers, 3, stage1_hidden, n_paf, norm)])
        self.heat_stages = nn.ModuleList([_branch(cf, stage1_channels, stage1_layers, 3, stage1_hidden, n_heat, norm)])
        cin = cf + n_paf + n_heat
        for _ in range(stages - 1):
            self.paf_stages.append(_branch(cin, stage_channels, stage_layers, stage_kernel, stage_channels, n_paf, norm))
            self.heat_stages.append(_branch(cin, stage_channels, stage_layers, stage_kernel, stage_channels, n_heat,
                                            norm))
        for branches, background in ((self.paf_stages, False), (self.heat_stages, True)):
            init_convs(branches)
            for b in branches:
                init_output(b[-1], background)

    def stage_outputs(self, images: Tensor) -> List[Tuple[Tensor, Tensor]]:
        """(PAFs, heatmaps) of every stage for padded, unnormalised images."""
        feats = self.backbone(self.normalize(images))
        f = self.adapter(list(feats.values())[-1] if isinstance(feats, dict) else feats)
        x = f
        outs = []
        for paf_stage, heat_stage in zip(self.paf_stages, self.heat_stages):
            paf, heat = paf_stage(x), heat_stage(x)
            outs.append((paf, heat))
            x = torch.cat([f, paf, heat], 1)
        return outs

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None):
        padded = pad_to_stride(images, self.stride)
        if self.training:
            if targets is None:
                raise ValueError("OpenPose needs targets in train mode")
            return self.losses(self.stage_outputs(padded), targets, padded.shape[-2:])
        heat, paf = self.predict_maps(padded)
        height = float(images.shape[-2])
        out = []
        for h, p in zip(heat.float(), paf.float()):
            people = group_people(h[:-1], p, self.skeleton, self.stride, height, **self.grouping)
            people.update(heatmaps=h[:-1].cpu(), pafs=p.cpu(), stride=self.stride)
            out.append(people)
        return out

    def build_targets(self, targets: List[Dict[str, Tensor]], grid: Tuple[int, int], size: Tuple[int, int]):
        """PAFs, heatmaps and loss weights (0 on ignored cells) on the output grid."""
        pafs, heats, weights = [], [], []
        for t in targets:
            kp = t["keypoints"]
            pafs.append(part_affinity_fields(kp, self.skeleton, grid, self.stride, self.paf_width))
            heats.append(gaussian_heatmaps(kp, grid, self.stride, self.sigma))
            ignore = t.get("ignore_mask")
            if ignore is None:
                weights.append(torch.ones(1, *grid, device=kp.device))
                continue
            m = ignore.float()[None, None]
            m = F.pad(m, (0, size[1] - m.shape[-1], 0, size[0] - m.shape[-2]))
            weights.append(1 - F.avg_pool2d((m > 0).float(), self.stride)[0])  # the share of a cell that counts
        return torch.stack(pafs), torch.stack(heats), torch.stack(weights)

    def losses(self, outs: List[Tuple[Tensor, Tensor]], targets, size) -> Dict[str, Tensor]:
        grid = tuple(outs[0][0].shape[-2:])
        paf_t, heat_t, weight = (x.to(outs[0][0].device) for x in self.build_targets(targets, grid, tuple(size)))
        return {"loss_paf": sum(masked_mse(p, paf_t, weight) for p, _ in outs),
                "loss_heatmap": sum(masked_mse(h, heat_t, weight) for _, h in outs)}

    def predict_maps(self, padded: Tensor) -> Tuple[Tensor, Tensor]:
        """Final-stage heatmaps and PAFs on the grid of ``padded``, averaged over the test scales and
        (with ``flip_test``) the mirrored inputs."""
        grid = (padded.shape[-2] // self.stride, padded.shape[-1] // self.stride)
        heat_sum, paf_sum, n = 0, 0, 0
        for s in self.test_scales:
            x = padded if s == 1.0 else F.interpolate(padded, scale_factor=s, mode="bilinear", align_corners=False)
            views = [(pad_to_stride(x, self.stride), False)]
            if self.flip_test:
                views.append((pad_to_stride(x.flip(-1), self.stride), True))
            scale = (x.shape[-2] / padded.shape[-2], x.shape[-1] / padded.shape[-1])
            for v, flipped in views:
                paf, heat = self.stage_outputs(v)[-1]
                shift = 0.0
                if flipped:  # mirror the columns back, then swap left/right channels and limbs
                    paf = flip_pafs(paf, self.skeleton, self.flip_index, self.limb_flip)
                    heat = flip_heatmaps(heat, self.flip_index)
                    # the padding of the mirrored input ends up on the left: the image starts this many cells in
                    shift = v.shape[-1] / self.stride - x.shape[-1] / self.stride
                heat_sum = heat_sum + resample_to_grid(heat.float(), scale, grid, shift)
                paf_sum = paf_sum + resample_to_grid(paf.float(), scale, grid, shift)
                n += 1
        return heat_sum / n, paf_sum / n


def resample_to_grid(maps: Tensor, scale: Tuple[float, float], grid: Tuple[int, int], shift: float = 0.0) -> Tensor:
    """Maps computed on an input resized by ``scale`` (y, x), sampled at the cell centres of the
    unscaled input's ``grid`` (same stride), bilinear with exact geometry; ``shift``: cells of
    padding left of the image in ``maps`` (a mirrored, padded input)."""
    if scale == (1.0, 1.0) and shift == 0 and tuple(maps.shape[-2:]) == tuple(grid):
        return maps
    h, w = grid
    hs, ws = maps.shape[-2:]
    # base cell j's centre (j + 0.5) * stride lies (j + 0.5) * scale cells into the scaled image
    gx = ((torch.arange(w, device=maps.device, dtype=torch.float32) + 0.5) * scale[1] + shift) / ws * 2 - 1
    gy = (torch.arange(h, device=maps.device, dtype=torch.float32) + 0.5) * scale[0] / hs * 2 - 1
    gyy, gxx = torch.meshgrid(gy, gx, indexing="ij")
    g = torch.stack([gxx, gyy], -1)[None].expand(maps.shape[0], -1, -1, -1)
    return F.grid_sample(maps, g, mode="bilinear", padding_mode="border", align_corners=False)
