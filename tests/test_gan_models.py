"""pix2pix / CycleGAN networks as in the reference implementation (parameter counts, state_dict
names, shapes, receptive field, initialisation), the adversarial losses and the image pool."""
import math

import pytest
import torch
from torch import nn

from torchcv.models.gans.networks import (NLayerDiscriminator, PixelDiscriminator, build_discriminator,
                                          build_generator)
from torchcv.models.gans.translation import CycleGAN, Pix2Pix
from torchcv.models.losses.gan_losses import GANLoss, gradient_penalty
from torchcv.registry import ConfigError
from torchcv.tasks.image_pool import ImagePool


def count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_match_the_reference():
    # the reference prints 54.414 M / 2.769 M (pix2pix G / D) and 11.378 M / 2.765 M (CycleGAN G / D);
    # built on the meta device: shapes only, no memory or initialisation time
    with torch.device("meta"):
        p2p = Pix2Pix()
        cyc = CycleGAN()
    assert (count(p2p.netG), count(p2p.netD)) == (54_413_955, 2_768_705)
    assert (count(cyc.netG_A), count(cyc.netG_B), count(cyc.netD_A), count(cyc.netD_B)) == \
        (11_378_179, 11_378_179, 2_764_737, 2_764_737)
    assert sum(isinstance(m, nn.Dropout) for m in p2p.netG.modules()) == 3      # unet_256: 8 - 5 ngf*8 blocks
    assert sum(isinstance(m, nn.Dropout) for m in cyc.netG_A.modules()) == 0    # CycleGAN: no dropout
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in cyc.netG_A.modules()) == 2 + 2 * 9


def test_state_dict_names_follow_the_reference_files():
    """So the reference's latest_net_G.pth / latest_net_D.pth load by name."""
    unet = build_generator(3, 3, "unet_32", ngf=4)
    keys = list(unet.state_dict())
    # the outermost down-convolution has no bias under batch norm (the reference's use_bias)
    assert keys[:2] == ["model.model.0.weight", "model.model.1.model.1.weight"]
    assert "model.model.1.model.3.model.3.model.3.model.1.weight" in keys  # the innermost down-conv
    res = build_generator(3, 3, "resnet_9blocks", ngf=4, norm="instance")
    assert "model.10.conv_block.1.weight" in res.state_dict() and "model.26.weight" in res.state_dict()
    d = build_discriminator(6, "basic", ndf=4)
    assert list(d.state_dict())[-2:] == ["model.11.weight", "model.11.bias"]
    assert list(build_discriminator(3, "pixel", ndf=4).state_dict())[0] == "net.0.weight"


def test_output_shapes_and_the_70x70_receptive_field():
    x = torch.randn(1, 3, 64, 64)
    assert build_generator(3, 1, "unet_64", ngf=4)(x).shape == (1, 1, 64, 64)
    assert build_generator(3, 3, "unet_32", ngf=4)(torch.randn(2, 3, 32, 96)).shape == (2, 3, 32, 96)
    assert build_generator(3, 3, "resnet_6blocks", ngf=4)(torch.randn(1, 3, 36, 44)).shape == (1, 3, 36, 44)
    out = build_generator(3, 3, "resnet_6blocks", ngf=4)(x)
    assert out.abs().max() <= 1  # tanh
    d = NLayerDiscriminator(3, ndf=4, n_layers=3).eval()  # eval: batch norm does not mix positions
    x = torch.randn(1, 3, 256, 256, requires_grad=True)
    y = d(x)
    assert y.shape == (1, 1, 30, 30)  # the reference's 30x30 patch grid for 256x256 inputs
    y[0, 0, 15, 15].backward()
    rows = x.grad[0].abs().sum((0, 2)).nonzero()
    cols = x.grad[0].abs().sum((0, 1)).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70 and int(cols.max() - cols.min() + 1) == 70
    assert PixelDiscriminator(3, ndf=4)(torch.randn(2, 3, 8, 8)).shape == (2, 1, 8, 8)


def test_unet_input_size_error_says_what_to_change():
    with pytest.raises(ConfigError, match=r"unet_64 needs image sides that are multiples of 64, got 48x48.*unet_32"):
        build_generator(3, 3, "unet_64", ngf=4)(torch.randn(1, 3, 48, 48))


def test_initialisation_and_norm_options():
    torch.manual_seed(0)
    g = build_generator(3, 3, "unet_256", ngf=64, init_gain=0.02)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(w.std()) - 0.02) < 2e-4 and abs(float(w.mean())) < 2e-4
    assert all(m.bias is None or not m.bias.any() for m in convs)
    bn = torch.cat([m.weight.detach() for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(bn.mean()) - 1.0) < 5e-3
    # convolutions followed by batch norm have no bias; with instance norm (no affine) they do
    assert g.model.model[1].model[1].bias is None
    inst = build_generator(3, 3, "resnet_6blocks", ngf=4, norm="instance")
    norms = [m for m in inst.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine and not m.track_running_stats for m in norms)
    assert inst.model[1].bias is not None


def test_reference_weight_files_load_by_name(tmp_path):
    torch.manual_seed(1)
    src = build_generator(3, 3, "resnet_2blocks", ngf=4, norm="instance")
    torch.save(src.state_dict(), tmp_path / "latest_net_G.pth")  # how the reference saves a network
    net = build_generator(3, 3, "resnet_2blocks", ngf=4, norm="instance", weights=str(tmp_path / "latest_net_G.pth"))
    for k, v in src.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)
    with pytest.raises(ConfigError, match=r"model.generator.weights: .*latest_net_G.pth does not fit.*ngf"):
        build_generator(3, 3, "resnet_2blocks", ngf=8, norm="instance", weights=str(tmp_path / "latest_net_G.pth"),
                        key="model.generator")


@pytest.mark.parametrize("arch,needle", [("unet_100", "power-of-two"), ("resnet9", "resnet_9blocks"),
                                         ("unet-256", "unet_256")])
def test_bad_generator_names(arch, needle):
    with pytest.raises(ConfigError, match=needle):
        build_generator(3, 3, arch)


def test_bad_model_arguments():
    with pytest.raises(ConfigError, match="model.discriminator.arch: 'patch' is not one of basic, n_layers, pixel"):
        Pix2Pix(discriminator={"arch": "patch"})
    with pytest.raises(ConfigError, match="model.generator: unknown option 'nfg'. Did you mean: 'ngf'"):
        Pix2Pix(generator={"arch": "unet_32", "nfg": 8})
    with pytest.raises(ConfigError, match="lambda_identity=0.5 needs in_channels == out_channels"):
        CycleGAN(in_channels=1, generator={"arch": "resnet_1blocks", "ngf": 4}, discriminator={"ndf": 4})
    with pytest.raises(ConfigError, match="gan_mode: 'lsgn' is unknown. Did you mean: 'lsgan'"):
        GANLoss("lsgn")


def test_gan_losses_exact_values():
    x = torch.tensor([[0.0, 2.0]])
    v = GANLoss("vanilla")
    assert float(v(x, True)) == pytest.approx((math.log(2) + math.log(1 + math.exp(-2))) / 2, rel=1e-6)
    assert float(v(x, False)) == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2, rel=1e-6)
    ls = GANLoss("lsgan")
    assert float(ls(x, True)) == 1.0 and float(ls(x, False)) == 2.0
    h = GANLoss("hinge")
    assert float(h(x, True)) == 0.5 and float(h(x, False)) == 2.0
    assert float(h(x, True, for_discriminator=False)) == -1.0
    w = GANLoss("wgangp")
    assert float(w(x, True)) == -1.0 and float(w(x, False)) == 1.0


def test_gradient_penalty_of_a_linear_critic():
    critic = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))  # |grad| = 5 everywhere
    gp = gradient_penalty(critic, torch.randn(6, 4), torch.randn(6, 4), weight=10.0)
    assert float(gp) == pytest.approx(10 * (5 - 1) ** 2)
    gp.backward()  # the penalty trains the critic (double backward)
    assert critic.weight.grad is not None


def test_image_pool_fills_then_swaps_and_resumes_exactly():
    assert ImagePool(0).query(torch.ones(2, 1)).tolist() == [[1.0], [1.0]]
    pool = ImagePool(3, seed=5)
    first = pool.query(torch.arange(4.0)[:, None])
    # the first 3 images fill the pool and come back unchanged; the 4th may be swapped
    assert first[:3].flatten().tolist() == [0.0, 1.0, 2.0] and len(pool) == 3
    pool.query(torch.arange(4.0, 10.0)[:, None])
    saved = pool.state_dict()
    a = pool.query(torch.arange(10.0, 30.0)[:, None])
    twin = ImagePool(3, seed=999)
    twin.load_state_dict(saved)
    b = twin.query(torch.arange(10.0, 30.0)[:, None])
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(pool.images, twin.images))
    served_old = [v for v, new in zip(a.flatten().tolist(), range(10, 30)) if v != new]
    assert served_old and all(v < 30 for v in served_old)  # some fakes were swapped for stored ones
    assert not a.requires_grad


def test_train_mode_forward_returns_named_losses_and_eval_mode_translations():
    torch.manual_seed(0)
    m = CycleGAN(generator={"arch": "resnet_1blocks", "ngf": 4}, discriminator={"ndf": 4, "arch": "n_layers",
                                                                                 "n_layers": 1})
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    losses = m(a, b)
    assert set(losses) == {"loss_G_A", "loss_G_B", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B",
                           "loss_D_A", "loss_D_B"}
    m.eval()
    out = m(a, b)
    assert set(out) == {"fake_B", "rec_A", "fake_A", "rec_B"} and out["fake_B"].shape == a.shape
    assert set(m(a)) == {"fake_B", "rec_A"}


@pytest.mark.parametrize("mode", ["hinge", "wgangp"])
def test_hinge_and_wgangp_losses_in_a_pix2pix_step(mode):
    torch.manual_seed(0)
    m = Pix2Pix(generator={"arch": "unet_32", "ngf": 4}, discriminator={"ndf": 4}, gan_mode=mode)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    fakes = m.generate(a, b)
    total, logged = m.discriminator_losses(a, b, fakes)
    extra = {"loss_D_gp"} if mode == "wgangp" else set()
    assert set(logged) == {"loss_D_real", "loss_D_fake"} | extra
    expected = (logged["loss_D_real"] + logged["loss_D_fake"]) * 0.5 + (logged["loss_D_gp"] if extra else 0)
    assert torch.allclose(total, expected)
    total.backward()
    assert all(p.grad is not None for p in m.netD.parameters())
    g_total, g_logged = m.generator_losses(a, b, fakes)
    assert torch.allclose(g_total, g_logged["loss_G_GAN"] + g_logged["loss_G_L1"])
