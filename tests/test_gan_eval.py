"""Translation metrics against their definitions: L1, PSNR, SSIM, the mean-image baseline, FID
(Fréchet distance computed another way), KID (the unbiased MMD written out), the class accuracy of
translated images with the built-in scorer, and the pictures / files the evaluator writes."""
import os

import cv2
import numpy as np
import pytest
import torch

from torchcv.data.datasets.translation import PairedImageDataset, UnpairedImageDataset
from torchcv.evaluation.gan_features import (_mmd2_unbiased, frechet_distance, kernel_inception_distance,
                                             load_feature_net)
from torchcv.evaluation.translation import (TranslationEvaluator, per_image_psnr, per_image_ssim, to_uint8_hwc)
from torchcv.registry import ConfigError

from gan_parts import paired_data, unpaired_data  # noqa: F401


def test_psnr_l1_ssim_definitions():
    a = torch.zeros(1, 3, 16, 16)
    assert float(per_image_psnr(a, a + 0.1)) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert float(per_image_psnr(a, a)) == pytest.approx(100.0)                  # capped
    # constant images: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) (the contrast terms are C2 / C2)
    c1 = 0.01 ** 2
    assert float(per_image_ssim(a + 0.2, a + 0.6)) == pytest.approx((2 * 0.12 + c1) / (0.04 + 0.36 + c1), rel=1e-5)
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    assert per_image_ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert float(per_image_ssim(x[:1], 1 - x[:1])) < 0  # anti-correlated


def _symmetric_sqrt(m):
    w, v = torch.linalg.eigh(m)
    return v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T


def test_frechet_distance_against_the_symmetric_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    y = torch.randn(200, 5, generator=g, dtype=torch.float64) * 2 + 1
    sx, sy = torch.cov(x.T), torch.cov(y.T)
    r = _symmetric_sqrt(sx)
    expected = (x.mean(0) - y.mean(0)).pow(2).sum() + sx.trace() + sy.trace() - 2 * _symmetric_sqrt(r @ sy @ r).trace()
    assert frechet_distance(x, y) == pytest.approx(float(expected), rel=1e-9)
    assert abs(frechet_distance(x, x)) < 1e-9
    assert frechet_distance(x, x + torch.tensor([3.0, 0, 4.0, 0, 0], dtype=torch.float64)) == pytest.approx(25.0)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)

    def k(a, b):
        return (float(a @ b) / 3 + 1) ** 3

    def mmd(x, y):
        m, n = len(x), len(y)
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return xx + yy - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert float(_mmd2_unbiased(x, y)) == pytest.approx(mmd(x, y), rel=1e-12)
    # equal sets no larger than subset_size: one subset, all samples
    assert kernel_inception_distance(x, y[:5], subset_size=1000) == pytest.approx(mmd(x, y[:5]), rel=1e-12)
    # otherwise the mean over seeded subsets of subset_size samples
    gen = torch.Generator().manual_seed(0)
    picks = [(torch.randperm(5, generator=gen)[:4], torch.randperm(6, generator=gen)[:4]) for _ in range(3)]
    assert kernel_inception_distance(x, y, subset_size=4, subsets=3) == pytest.approx(
        sum(mmd(x[i], y[j]) for i, j in picks) / 3, rel=1e-12)


def test_kid_subsets_are_seeded():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g)
    assert kernel_inception_distance(x, y, 10, 5) == kernel_inception_distance(x, y, 10, 5)
    assert kernel_inception_distance(x, y, 10, 5, seed=1) != kernel_inception_distance(x, y, 10, 5, seed=0)


def _outputs(ds, fake_fn):
    items = [ds[i] for i in range(len(ds))]
    a = torch.stack([it[0] for it in items])
    b = torch.stack([it[1] for it in items])
    return {"fake_B": fake_fn(a, b), "real_A": a, "real_B": b}, b, [it[2] for it in items]


def test_perfect_translation_and_the_mean_image_baseline(paired_data):  # noqa: F811
    ds = PairedImageDataset(paired_data, "val")
    ev = TranslationEvaluator(ds)
    ev.process(*_outputs(ds, lambda a, b: b.clone()))
    m = ev.compute()
    assert m["L1"] == 0.0 and m["PSNR"] == pytest.approx(100.0) and m["SSIM"] == pytest.approx(1.0, abs=1e-5)
    targets = torch.stack([ds[i][1] for i in range(len(ds))])
    t01 = ((targets + 1) / 2 * 255).round() / 255
    mean = t01.mean(0, keepdim=True)
    assert m["mean_image_L1"] == pytest.approx(float((t01 - mean).abs().mean()), rel=1e-6)
    assert m["mean_image_PSNR"] == pytest.approx(
        float((10 * torch.log10(1 / (t01 - mean).pow(2).flatten(1).mean(1))).mean()), rel=1e-6)
    assert "FID" not in m and "acc" not in m  # no feature network given


def test_class_accuracy_and_fid_with_the_scorer(paired_data):  # noqa: F811
    ds = PairedImageDataset(paired_data, "val")
    scorer = os.path.join(paired_data, "scorer.pth")
    ev = TranslationEvaluator(ds, feature_net=scorer, labels=os.path.join(paired_data, "labels.txt"))
    outputs, targets, metas = _outputs(ds, lambda a, b: b.clone())
    ev.process(outputs, targets, metas)
    m = ev.compute()
    # the accuracy is the scorer's own on the real B images with their labels from labels.txt
    net = load_feature_net(scorer)
    _, logits = net.features_and_logits(targets)
    labels = dict(line.split() for line in open(os.path.join(paired_data, "labels.txt")))
    expected = [net.classes.index("B_" + labels[os.path.relpath(mt["path"], paired_data)]) for mt in metas]
    assert m["acc"] == pytest.approx(float((logits.argmax(1) == torch.tensor(expected)).float().mean()))
    assert abs(m["FID"]) < 1e-6 and m["KID"] == pytest.approx(float(kernel_inception_distance(
        *(net.features_and_logits(targets)[0],) * 2)), abs=1e-9)
    # the A images (outlines) passed off as translations belong to the other domain
    ev2 = TranslationEvaluator(ds, feature_net=scorer, labels=os.path.join(paired_data, "labels.txt"))
    ev2.process(*_outputs(ds, lambda a, b: a.clone()))
    m2 = ev2.compute()
    _, logits_a = net.features_and_logits(torch.stack([ds[i][0] for i in range(len(ds))]))
    assert m2["acc"] == pytest.approx(float((logits_a.argmax(1) == torch.tensor(expected)).float().mean()))
    f_a = net.features_and_logits(torch.stack([ds[i][0] for i in range(len(ds))]))[0]
    assert m2["FID"] == pytest.approx(frechet_distance(f_a, net.features_and_logits(targets)[0]), rel=1e-9)


def test_cycle_metrics_both_directions(unpaired_data):  # noqa: F811
    ds = UnpairedImageDataset(unpaired_data, "val", ground_truth_pairs=True)
    items = [ds[i] for i in range(len(ds))]
    a, b = torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])
    out = {"real_A": a, "real_B": b, "fake_B": b.clone(), "rec_A": (a + 0.2).clamp(-1, 1), "fake_A": a.clone(),
           "rec_B": b.clone()}
    ev = TranslationEvaluator(ds)
    ev.process(out, b, [i[2] for i in items])
    m = ev.compute()
    rec_err = float(((a + 0.2).clamp(-1, 1) - a).abs().mean() / 2)  # in [0, 1] units
    assert m["cycle_L1_A"] == pytest.approx(rec_err, rel=1e-5) and m["cycle_L1_B"] == 0.0
    assert m["cycle_L1"] == pytest.approx(rec_err / 2, rel=1e-5)
    assert m["L1"] == 0.0 and m["L1_BtoA"] == 0.0 and m["PSNR_BtoA"] == pytest.approx(100.0)


def test_pictures_and_test_outputs(tmp_path, paired_data):  # noqa: F811
    ds = PairedImageDataset(paired_data, "test")
    ev = TranslationEvaluator(ds, num_vis=3)
    ev.writing = True
    outputs, targets, metas = _outputs(ds, lambda a, b: -b)
    ev.process(outputs, targets, metas)
    ev.compute()
    ev.write(str(tmp_path))
    files = sorted(os.listdir(tmp_path / "fake_B"))
    assert files == sorted(os.path.basename(m["path"]) for m in metas)  # every translation, named by its A file
    first = cv2.imread(str(tmp_path / "fake_B" / files[0]))[:, :, ::-1]
    assert np.array_equal(first, to_uint8_hwc(-targets[0]))
    grid = cv2.imread(str(tmp_path / "translations.png"))
    # 3 rows of 32 px tiles enlarged 4x (at least 128 px), 3 columns, a title band of 18 px
    assert grid.shape == (18 + 3 * (128 + 2), 3 * (128 + 2), 3)


def test_evaluator_config_errors(paired_data, tmp_path):  # noqa: F811
    ds = PairedImageDataset(paired_data, "val")
    with pytest.raises(ConfigError, match="feature network file not found: .*nope.pth"):
        TranslationEvaluator(ds, feature_net=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match="labels needs a classifying feature_net"):
        TranslationEvaluator(ds, labels=os.path.join(paired_data, "labels.txt"))
    torch.save({"w": torch.zeros(1)}, tmp_path / "junk.pth")
    with pytest.raises(ConfigError, match="junk.pth is not a torchvision Inception-v3 state_dict"):
        TranslationEvaluator(ds, feature_net=str(tmp_path / "junk.pth"))


def test_user_inception_weights_give_2048_features(tmp_path):
    from torchvision.models import inception_v3
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), tmp_path / "inc.pth")
    net = load_feature_net({"arch": "inception_v3", "weights": str(tmp_path / "inc.pth")})
    f, logits = net.features_and_logits(torch.rand(2, 1, 40, 40) * 2 - 1)  # grey, small: resized to 299
    assert f.shape == (2, 2048) and logits is None
