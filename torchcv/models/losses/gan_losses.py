"""Adversarial losses on discriminator logits, and the WGAN-GP gradient penalty.

``GANLoss(mode)(logits, target_is_real, for_discriminator=True)``:

- ``vanilla``: binary cross-entropy with logits against 1 (real) / 0 (fake), as in pix2pix;
- ``lsgan``: mean squared error against 1 / 0, as in CycleGAN;
- ``hinge``: discriminator mean(relu(1 - real)) and mean(relu(1 + fake)); generator -mean(fake);
- ``wgangp``: the Wasserstein critic, -mean(real) and mean(fake) (the generator: -mean(fake)); pair
  it with ``gradient_penalty``.

For a PatchGAN the logits form a grid and every patch counts equally (the mean over the grid).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES, ConfigError, did_you_mean

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")


@LOSSES.register()
class GANLoss(nn.Module):
    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise ConfigError(f"gan_mode: '{mode}' is unknown.{did_you_mean(str(mode), GAN_MODES)} "
                              f"Choose one of {', '.join(GAN_MODES)}")
        self.mode = mode
        self.real_label, self.fake_label = float(real_label), float(fake_label)

    def forward(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if self.mode in ("vanilla", "lsgan"):
            target = torch.full_like(logits, self.real_label if target_is_real else self.fake_label)
            if self.mode == "vanilla":
                return F.binary_cross_entropy_with_logits(logits, target)
            return F.mse_loss(logits, target)
        if self.mode == "hinge" and for_discriminator:
            return F.relu(1.0 - logits).mean() if target_is_real else F.relu(1.0 + logits).mean()
        # wgangp (both players) and the hinge generator: the critic's score
        return -logits.mean() if target_is_real else logits.mean()


def gradient_penalty(netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``weight * mean((|grad D(x)| - 1)^2)`` at random points ``x``
    on the lines between real and fake samples (one mixing factor per sample, from torch's RNG)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = netD(mixed)
    grads, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return weight * ((grads.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
