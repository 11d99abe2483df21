#!/usr/bin/env python
"""Write the built-in image-to-image translation datasets, and a small classifier to score them.

    python datasets/generate_shapes_gan.py --kind paired   --out data/gan_shapes_paired   [--size 64]
    python datasets/generate_shapes_gan.py --kind unpaired --out data/gan_shapes_unpaired [--size 32]
        [--train N] [--val N] [--test N] [--seed 0] [--scorer-epochs 8] [--no-scorer]

Every image shows one shape (circle, square or triangle) at a random place, size and angle.

- ``paired`` (pix2pix, the reference's aligned layout ``<split>/<id>.png``, A|B side by side): A is
  the shape's white outline on black; B the shape filled with its class colour (circle red, square
  green, triangle blue) on a fixed striped texture (it varies along rows only, so flips keep it
  predictable). Translating A to B means recognising the shape from its outline.
- ``unpaired`` (CycleGAN, ``<split>A/``, ``<split>B/``): domain A draws shapes in palette A (red,
  green, blue on light grey), domain B in palette B (yellow, magenta, cyan on dark blue-grey): the
  true A -> B mapping is this palette swap. Circles, squares and triangles occur in proportions
  0.5 / 0.3 / 0.2 in both domains, so the swap is the only colour mapping that also matches the
  colour statistics of B. Training A and B images come from independent scenes
  (unpaired); the i-th val/test A and B images show the same scene, so translations can also be
  compared with the truth.

Both write ``labels.txt`` (``<relative path> <shape>`` for every image) and, unless ``--no-scorer``,
``scorer.pth``: a small CNN (torchcv.evaluation.gan_features.ShapesScorer, 32x32 input) trained on the
training images to tell the six (domain, shape) classes apart. The evaluator uses it for the
accuracy of translated images and as the feature network of FID/KID. Images carry a little pixel
noise; the same seed always gives the same files.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Tuple

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle")
PAIRED_COLOURS = {"circle": (220, 60, 50), "square": (60, 180, 70), "triangle": (50, 90, 220)}
PALETTE_A = {"circle": (220, 60, 50), "square": (60, 180, 70), "triangle": (50, 90, 220), "bg": (200, 200, 200)}
PALETTE_B = {"circle": (235, 205, 40), "square": (200, 50, 200), "triangle": (40, 200, 210), "bg": (40, 50, 70)}
NOISE = 3.0  # pixel noise (sigma, in 0..255 units)
# unpaired data: unequal class frequencies, the same in both domains, so the true palette swap is the
# only colour mapping under which translated A images have the colour statistics of B
UNPAIRED_SHAPE_WEIGHTS = (0.5, 0.3, 0.2)


def sample_scene(rng: np.random.Generator, size: int, weights=None) -> Dict:
    shape = SHAPES[int(rng.choice(3, p=weights))] if weights is not None else SHAPES[int(rng.integers(3))]
    r = rng.uniform(0.2, 0.34) * size
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    return {"shape": shape, "r": r, "cx": cx, "cy": cy, "angle": rng.uniform(0, 2 * np.pi)}


def shape_mask(scene: Dict, size: int, outline: bool = False) -> np.ndarray:
    """uint8 {0, 1}: the filled shape, or its outline (2 px) when ``outline``."""
    m = np.zeros((size, size), np.uint8)
    s = 16  # draw with sub-pixel precision (cv2 shift = 4 bits)
    thickness = 2 if outline else -1
    if scene["shape"] == "circle":
        cv2.circle(m, (int(scene["cx"] * s), int(scene["cy"] * s)), int(scene["r"] * s), 1, thickness, cv2.LINE_8, 4)
    else:
        n = 4 if scene["shape"] == "square" else 3
        pts = [(scene["cx"] + scene["r"] * np.cos(scene["angle"] + 2 * np.pi * k / n),
                scene["cy"] + scene["r"] * np.sin(scene["angle"] + 2 * np.pi * k / n)) for k in range(n)]
        poly = (np.array(pts) * s).astype(np.int32).reshape(-1, 1, 2)
        if outline:
            cv2.polylines(m, [poly], True, 1, thickness, cv2.LINE_8, 4)
        else:
            cv2.fillPoly(m, [poly], 1, cv2.LINE_8, 4)
    return m


def texture(size: int) -> np.ndarray:
    """The fixed background of paired B images: horizontal stripes over a vertical colour gradient.
    It depends on the row only, so a horizontal flip of a pair leaves it predictable from A."""
    yy = np.mgrid[0:size, 0:size][0].astype(np.float32)
    stripes = np.sin(2 * np.pi * yy / 8.0)[..., None] * np.array([22, 18, 12], np.float32)
    grad = (yy / size)[..., None] * np.array([-40, -10, 30], np.float32)
    return np.array([150, 140, 120], np.float32) + stripes + grad


def noisy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, NOISE, img.shape), 0, 255).round().astype(np.uint8)


def render_paired(scene: Dict, size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    a = np.zeros((size, size, 3), np.float32)
    a[shape_mask(scene, size, outline=True).astype(bool)] = 255
    b = texture(size)
    b[shape_mask(scene, size).astype(bool)] = PAIRED_COLOURS[scene["shape"]]
    return noisy(a, rng), noisy(b, rng)


def render_palette(scene: Dict, size: int, palette: Dict, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((size, size, 3), np.float32)
    img[:] = palette["bg"]
    img[shape_mask(scene, size).astype(bool)] = palette[scene["shape"]]
    return noisy(img, rng)


def save(path: str, rgb: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1]))


def generate(out: str, kind: str = "paired", size: int = 64, n_train: int = 400, n_val: int = 60, n_test: int = 60,
             seed: int = 0, scorer_epochs: int = 8, scorer: bool = True) -> Dict[str, float]:
    """Write the dataset (and scorer); returns the scorer's accuracy on the val images."""
    labels: List[str] = []
    scorer_images: Dict[str, List[Tuple[np.ndarray, str]]] = {"train": [], "val": []}
    for offset, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        rng = np.random.default_rng([seed, offset])
        weights = UNPAIRED_SHAPE_WEIGHTS if kind == "unpaired" else None
        for i in range(n):
            name = f"{i:05d}.png"
            scene = sample_scene(rng, size, weights)
            if kind == "paired":
                a, b = render_paired(scene, size, rng)
                save(os.path.join(out, split, name), np.concatenate([a, b], axis=1))
                labels.append(f"{split}/{name} {scene['shape']}")
                domains = (("A", a, scene), ("B", b, scene))
            else:
                # training domains come from independent scenes; val/test pairs share theirs
                scene_b = sample_scene(rng, size, weights) if split == "train" else scene
                a = render_palette(scene, size, PALETTE_A, rng)
                b = render_palette(scene_b, size, PALETTE_B, rng)
                save(os.path.join(out, f"{split}A", name), a)
                save(os.path.join(out, f"{split}B", name), b)
                labels += [f"{split}A/{name} {scene['shape']}", f"{split}B/{name} {scene_b['shape']}"]
                domains = (("A", a, scene), ("B", b, scene_b))
            if split in scorer_images:
                scorer_images[split] += [(img, f"{d}_{s['shape']}") for d, img, s in domains]
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")
    if not scorer:
        return {}
    return train_scorer(out, scorer_images, scorer_epochs, seed)


def train_scorer(out: str, images: Dict[str, List[Tuple[np.ndarray, str]]], epochs: int, seed: int) -> Dict[str, float]:
    """The (domain, shape) classifier on 32x32 inputs in [-1, 1], trained with flips; saved as scorer.pth."""
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from torchcv.evaluation.gan_features import ShapesScorer, save_scorer

    classes = [f"{d}_{s}" for d in ("A", "B") for s in SHAPES]

    def tensors(items):
        x = torch.from_numpy(np.stack([img for img, _ in items])).permute(0, 3, 1, 2).float() / 127.5 - 1
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=x.shape[-1] > 32)
        return x, torch.tensor([classes.index(c) for _, c in items])

    x, y = tensors(images["train"])
    xv, yv = tensors(images["val"]) if images["val"] else (x, y)
    torch.manual_seed(seed)
    net = ShapesScorer(len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    steps = epochs * max(1, len(x) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for k in range(0, len(x) - 31 if len(x) >= 32 else 1, 32):
            idx = order[k:k + 32]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(xv).argmax(1) == yv).float().mean())
    save_scorer(os.path.join(out, "scorer.pth"), net, classes, 32, val_accuracy=acc)
    return {"scorer_val_accuracy": acc}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=("paired", "unpaired"), default="paired")
    p.add_argument("--out", default=None, help="default: data/gan_shapes_<kind>")
    p.add_argument("--size", type=int, default=None, help="image side (default 64 paired, 32 unpaired)")
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--val", type=int, default=60)
    p.add_argument("--test", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scorer-epochs", type=int, default=8)
    p.add_argument("--no-scorer", action="store_true", help="skip training the classifier (no FID/KID/acc)")
    a = p.parse_args(argv)
    out = a.out or f"data/gan_shapes_{a.kind}"
    size = a.size or (64 if a.kind == "paired" else 32)
    info = generate(out, a.kind, size, a.train, a.val, a.test, a.seed, a.scorer_epochs, not a.no_scorer)
    extra = f"; scorer accuracy on val {info['scorer_val_accuracy']:.3f}" if info else ""
    print(f"wrote {a.train}/{a.val}/{a.test} train/val/test {a.kind} samples ({size}x{size}) to {out}{extra}")


if __name__ == "__main__":
    main()
