"""Whole image-to-image translation models: pix2pix (paired) and CycleGAN (unpaired).

A model owns its networks (``netG`` / ``netD``, or ``netG_A``, ``netG_B``, ``netD_A``, ``netD_B``,
the names the optimizers select with ``params:``) and its losses; the ``gan`` task runs one
iteration in the reference's order through the model's three steps:

    fakes = model.generate(real_A, real_B)                  # one forward of the generators
    total, logged = model.generator_losses(real_A, real_B, fakes)          # discriminators frozen
    total, logged = model.discriminator_losses(real_A, real_B, fakes, pools)

``logged`` holds the named loss values (``loss_G_GAN``, ``loss_D_real`` ...); ``total`` is what one
optimizer minimises. In eval mode ``model(real_A, real_B=None)`` returns the translations by name
(``fake_B``; CycleGAN adds ``rec_A`` and, given ``real_B``, ``fake_A`` and ``rec_B``); in train mode
it returns every loss of the current networks without stepping (the model contract).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS, ConfigError
from ..losses.gan_losses import GANLoss, gradient_penalty
from .networks import build_discriminator, build_generator, network_entry

Losses = Tuple[torch.Tensor, Dict[str, torch.Tensor]]


class TranslationGAN(nn.Module):
    # the order of one iteration: "D" then "G" (pix2pix) or "G" then "D" (CycleGAN)
    step_order: Sequence[str] = ("D", "G")
    # the discriminators, frozen (requires_grad False) while the generators are updated
    discriminator_names: Sequence[str] = ()
    # fakes that reach the discriminators through an image pool (task state)
    pooled: Sequence[str] = ()

    def __init__(self, in_channels: int, out_channels: int, gan_mode: str, lambda_gp: float):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"model.{name}={v!r}: must be a positive number of image channels (3 RGB, 1 grey)")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.criterion = GANLoss(gan_mode)
        self.gan_mode = gan_mode
        self.lambda_gp = float(lambda_gp)

    def discriminators(self):
        return [getattr(self, n) for n in self.discriminator_names]

    def set_discriminators_trainable(self, flag: bool) -> None:
        for net in self.discriminators():
            for p in net.parameters():
                p.requires_grad_(flag)

    def d_pair_loss(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, suffix: str = "",
                    fake_first: bool = False) -> Losses:
        """The reference's discriminator loss: (real + fake) / 2, plus the gradient penalty under
        ``wgangp``. ``fake_first``: pix2pix scores the fake batch first, CycleGAN the real one (the
        order matters to batch-norm running statistics)."""
        if fake_first:
            loss_fake = self.criterion(netD(fake.detach()), False)
            loss_real = self.criterion(netD(real), True)
        else:
            loss_real = self.criterion(netD(real), True)
            loss_fake = self.criterion(netD(fake.detach()), False)
        total = (loss_real + loss_fake) * 0.5
        logged = {f"loss_D{suffix}_real": loss_real, f"loss_D{suffix}_fake": loss_fake}
        if self.gan_mode == "wgangp":
            gp = gradient_penalty(netD, real, fake, self.lambda_gp)
            total = total + gp
            logged[f"loss_D{suffix}_gp"] = gp
        return total, logged

    def generate(self, real_A: torch.Tensor, real_B: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def generator_losses(self, real_A, real_B, fakes) -> Losses:
        raise NotImplementedError

    def discriminator_losses(self, real_A, real_B, fakes, pools=None) -> Losses:
        raise NotImplementedError

    def forward(self, real_A: torch.Tensor, real_B: Optional[torch.Tensor] = None):
        fakes = self.generate(real_A, real_B)
        if not self.training:
            return fakes
        if real_B is None:
            raise ValueError(f"{type(self).__name__} needs real_B in train mode (the losses compare with it)")
        _, g = self.generator_losses(real_A, real_B, fakes)
        _, d = self.discriminator_losses(real_A, real_B, fakes)
        return {**g, **d}


@MODELS.register()
class Pix2Pix(TranslationGAN):
    """Conditional GAN on paired images (Isola et al. 2017): G maps A to B; the discriminator sees
    the pair cat(A, B) (real) or cat(A, G(A)) (fake). G's loss: GAN + ``lambda_L1`` * L1(G(A), B).
    One iteration (the reference's order): G forward, D step, G step with D frozen.

    Args:
        in_channels / out_channels: channels of A / B.
        generator: ``{arch: unet_256, ngf: 64, norm: batch, dropout: true, ...}`` (models/gans/networks.py).
        discriminator: ``{arch: basic, ndf: 64, n_layers: 3, norm: batch, ...}``.
        gan_mode: vanilla | lsgan | hinge | wgangp. lambda_L1: weight of the L1 term.
        lambda_gp: gradient penalty weight (wgangp only).
    """

    step_order = ("D", "G")
    discriminator_names = ("netD",)
    pooled = ()

    def __init__(self, in_channels: int = 3, out_channels: int = 3, generator: Optional[Dict[str, Any]] = None,
                 discriminator: Optional[Dict[str, Any]] = None, gan_mode: str = "vanilla", lambda_L1: float = 100.0,
                 lambda_gp: float = 10.0):
        super().__init__(in_channels, out_channels, gan_mode, lambda_gp)
        g = network_entry({"arch": "unet_256", "dropout": True, **(generator or {})}, "model.generator", build_generator)
        d = network_entry(discriminator, "model.discriminator", build_discriminator)
        self.netG = build_generator(in_channels, out_channels, key="model.generator", **g)
        self.netD = build_discriminator(in_channels + out_channels, key="model.discriminator", **d)
        self.lambda_L1 = float(lambda_L1)

    def generate(self, real_A, real_B=None):
        return {"fake_B": self.netG(real_A)}

    def generator_losses(self, real_A, real_B, fakes) -> Losses:
        fake_B = fakes["fake_B"]
        loss_gan = self.criterion(self.netD(torch.cat([real_A, fake_B], 1)), True, for_discriminator=False)
        loss_l1 = F.l1_loss(fake_B, real_B) * self.lambda_L1
        return loss_gan + loss_l1, {"loss_G_GAN": loss_gan, "loss_G_L1": loss_l1}

    def discriminator_losses(self, real_A, real_B, fakes, pools=None) -> Losses:
        return self.d_pair_loss(self.netD, torch.cat([real_A, real_B], 1), torch.cat([real_A, fakes["fake_B"]], 1),
                                fake_first=True)


@MODELS.register()
class CycleGAN(TranslationGAN):
    """Unpaired translation (Zhu et al. 2017): G_A maps A to B, G_B maps B to A; D_A tells real B from
    G_A(A), D_B real A from G_B(B). Generator loss: GAN (both directions) + ``lambda_A`` * L1 of the
    A -> B -> A cycle + ``lambda_B`` * L1 of the B -> A -> B cycle + identity terms
    (``lambda_identity`` * lambda * L1(G_A(B), B), and for G_B). One iteration (the reference's
    order): generator forward, G step with both discriminators frozen, D step on fakes drawn through
    the image pools.

    Args: as Pix2Pix, plus lambda_A, lambda_B (cycle weights) and lambda_identity (0 disables the
    identity terms; they need in_channels == out_channels).
    """

    step_order = ("G", "D")
    discriminator_names = ("netD_A", "netD_B")
    pooled = ("fake_B", "fake_A")

    def __init__(self, in_channels: int = 3, out_channels: int = 3, generator: Optional[Dict[str, Any]] = None,
                 discriminator: Optional[Dict[str, Any]] = None, gan_mode: str = "lsgan", lambda_A: float = 10.0,
                 lambda_B: float = 10.0, lambda_identity: float = 0.5, lambda_gp: float = 10.0):
        super().__init__(in_channels, out_channels, gan_mode, lambda_gp)
        if lambda_identity > 0 and in_channels != out_channels:
            raise ConfigError(f"model.lambda_identity={lambda_identity} needs in_channels == out_channels (got "
                              f"{in_channels} and {out_channels}): set model.lambda_identity=0")
        g = network_entry({"arch": "resnet_9blocks", "norm": "instance", **(generator or {})}, "model.generator",
                          build_generator)
        d = network_entry({"norm": "instance", **(discriminator or {})}, "model.discriminator", build_discriminator)
        self.netG_A = build_generator(in_channels, out_channels, key="model.generator", **g)
        self.netG_B = build_generator(out_channels, in_channels, key="model.generator", **g)
        self.netD_A = build_discriminator(out_channels, key="model.discriminator", **d)
        self.netD_B = build_discriminator(in_channels, key="model.discriminator", **d)
        self.lambda_A, self.lambda_B, self.lambda_identity = float(lambda_A), float(lambda_B), float(lambda_identity)

    def generate(self, real_A, real_B=None):
        fake_B = self.netG_A(real_A)
        out = {"fake_B": fake_B, "rec_A": self.netG_B(fake_B)}
        if real_B is not None:
            fake_A = self.netG_B(real_B)
            out.update(fake_A=fake_A, rec_B=self.netG_A(fake_A))
        return out

    def generator_losses(self, real_A, real_B, fakes) -> Losses:
        logged: Dict[str, torch.Tensor] = {}
        if self.lambda_identity > 0:
            logged["loss_idt_A"] = F.l1_loss(self.netG_A(real_B), real_B) * self.lambda_B * self.lambda_identity
            logged["loss_idt_B"] = F.l1_loss(self.netG_B(real_A), real_A) * self.lambda_A * self.lambda_identity
        logged["loss_G_A"] = self.criterion(self.netD_A(fakes["fake_B"]), True, for_discriminator=False)
        logged["loss_G_B"] = self.criterion(self.netD_B(fakes["fake_A"]), True, for_discriminator=False)
        logged["loss_cycle_A"] = F.l1_loss(fakes["rec_A"], real_A) * self.lambda_A
        logged["loss_cycle_B"] = F.l1_loss(fakes["rec_B"], real_B) * self.lambda_B
        order = ("loss_G_A", "loss_G_B", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B")  # the reference's sum
        return sum(logged[k] for k in order if k in logged), logged

    def discriminator_losses(self, real_A, real_B, fakes, pools=None) -> Losses:
        fake_B, fake_A = fakes["fake_B"], fakes["fake_A"]
        if pools:
            fake_B, fake_A = pools["fake_B"].query(fake_B), pools["fake_A"].query(fake_A)
        # the reference logs D_A and D_B, each (real + fake) / 2, rather than their real / fake parts
        total_A, _ = self.d_pair_loss(self.netD_A, real_B, fake_B, "_A")
        total_B, _ = self.d_pair_loss(self.netD_B, real_A, fake_A, "_B")
        return total_A + total_B, {"loss_D_A": total_A, "loss_D_B": total_B}
