#!/usr/bin/env python
"""Write the built-in video classification dataset: real video files in the Kinetics folder layout,
offline and deterministic.

    python datasets/generate_shapes_video.py --out data/shapes_video [--seed 0] [--train 640 --val 160 --test 160]
        [--size 64] [--frames 16] [--fps 15] [--codec mp4v]

Eight classes defined only by motion: one "actor" shape moves left / right / up / down (wrapping
around the frame edges, so where it is says nothing about where it goes), rotates clockwise /
counter-clockwise, or grows / shrinks, among 1-2 static distractor shapes on a dark background with
fresh noise in every frame. Shape kind, colour, size, angle and position are drawn at random for
every video and class, so a single frame carries no label: only the order of the frames does.
Layout: ``<out>/{train,val,test}/<class>/<n>.mp4`` (MPEG-4 part 2, ``mp4v``, which every OpenCV
wheel writes and reads; ``--codec MJPG`` writes ``.avi`` instead) and ``<out>/classes.txt``.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
from typing import List, Tuple

import cv2
import numpy as np

CLASSES = ["move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "grow", "shrink"]
CODECS = {"mp4v": ".mp4", "MJPG": ".avi"}
SHIFT = 4  # fixed-point bits of cv2.fillPoly coordinates: sub-pixel motion stays smooth

# unit outlines, none symmetric under small rotations, so rotation is visible whatever the shape
SHAPES = {
    "triangle": [(1.0, 0.0), (-0.6, 0.7), (-0.6, -0.7)],
    "ell": [(-0.8, -0.9), (-0.2, -0.9), (-0.2, 0.3), (0.8, 0.3), (0.8, 0.9), (-0.8, 0.9)],
    "arrow": [(1.0, 0.0), (0.1, 0.8), (0.1, 0.3), (-0.9, 0.3), (-0.9, -0.3), (0.1, -0.3), (0.1, -0.8)],
    "bar": [(1.0, 0.45), (-1.0, 0.45), (-1.0, -0.45), (1.0, -0.45)],
    "kite": [(1.0, 0.0), (0.0, 0.5), (-0.7, 0.0), (0.0, -0.5)],
}


def outline(kind: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    pts = np.array(SHAPES[kind], dtype=np.float64) * radius
    c, s = math.cos(angle), math.sin(angle)
    rot = pts @ np.array([[c, s], [-s, c]])
    return np.round((rot + (cx, cy)) * (1 << SHIFT)).astype(np.int32)


def bright_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    """A saturated or pale colour of any hue, always bright: every shape stands out from the dark
    background with the same contrast polarity, whatever its colour."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(200, 256)]]], np.uint8)
    return tuple(int(x) for x in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def actor_track(cls: str, rng: np.random.Generator, size: int, frames: int):
    """Per-frame (cx, cy, radius, angle) of the moving shape for class ``cls``."""
    r0 = rng.uniform(0.15, 0.22) * size
    cx, cy = rng.uniform(0, size, 2)
    angle = rng.uniform(0, 2 * math.pi)
    t = np.arange(frames, dtype=np.float64)
    cxs, cys = np.full(frames, cx), np.full(frames, cy)
    radii, angles = np.full(frames, r0), np.full(frames, angle)
    speed = rng.uniform(0.045, 0.065) * size  # pixels per frame
    if cls == "move_left":
        cxs = cx - speed * t
    elif cls == "move_right":
        cxs = cx + speed * t
    elif cls == "move_up":
        cys = cy - speed * t
    elif cls == "move_down":
        cys = cy + speed * t
    elif cls in ("rotate_cw", "rotate_ccw"):
        spin = math.radians(rng.uniform(12, 20)) * (1 if cls == "rotate_cw" else -1)  # image y points down
        angles = angle + spin * t
        cxs, cys = np.full(frames, rng.uniform(r0, size - r0)), np.full(frames, rng.uniform(r0, size - r0))
    else:  # grow / shrink between two random sizes: any one size fits both classes
        small, large = rng.uniform(0.06, 0.09) * size, rng.uniform(0.24, 0.3) * size
        ramp = np.linspace(small, large, frames) if cls == "grow" else np.linspace(large, small, frames)
        radii = ramp
        cxs, cys = np.full(frames, rng.uniform(large, size - large)), np.full(frames, rng.uniform(large, size - large))
    return cxs % size, cys % size, radii, angles


def render(cls: str, rng: np.random.Generator, size: int = 64, frames: int = 16) -> np.ndarray:
    """One video as uint8 BGR frames [T, size, size, 3]."""
    base = rng.integers(20, 100, 3).astype(np.float32)
    kind = list(SHAPES)[rng.integers(len(SHAPES))]
    color = bright_color(rng)
    static = np.empty((size, size, 3), np.float32)
    static[:] = base
    for _ in range(rng.integers(1, 3)):  # static distractors: shapes that never move
        d_kind = list(SHAPES)[rng.integers(len(SHAPES))]
        r = rng.uniform(0.08, 0.16) * size
        pts = outline(d_kind, *rng.uniform(r, size - r, 2), r, rng.uniform(0, 2 * math.pi))
        cv2.fillPoly(static, [pts], bright_color(rng), cv2.LINE_AA, shift=SHIFT)
    cxs, cys, radii, angles = actor_track(cls, rng, size, frames)
    noise = rng.normal(0, 8, (frames, size, size, 3)).astype(np.float32)
    video = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        frame = static.copy()
        # a shape crossing an edge shows on both sides (the frame is a torus for the movers)
        for dx in (-size, 0, size):
            for dy in (-size, 0, size):
                pts = outline(kind, cxs[i] + dx, cys[i] + dy, radii[i], angles[i])
                cv2.fillPoly(frame, [pts], color, cv2.LINE_AA, shift=SHIFT)
        video[i] = np.clip(frame + noise[i], 0, 255).astype(np.uint8)
    return video


def write_video(path: str, frames: np.ndarray, fps: float, codec: str = "mp4v") -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {codec} video to {path}: its FFmpeg build lacks the encoder")
    for frame in frames:
        writer.write(frame)
    writer.release()


def generate(out: str, seed: int = 0, counts=(("train", 640), ("val", 160), ("test", 160)), size: int = 64,
             frames: int = 16, fps: float = 15.0, codec: str = "mp4v") -> List[str]:
    ext = CODECS[codec]
    written = []
    for split_i, (split, n) in enumerate(counts):
        rng = np.random.default_rng([seed, split_i])
        for i in range(n):
            cls = CLASSES[i % len(CLASSES)]
            folder = os.path.join(out, split, cls)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{i:05d}{ext}")
            write_video(path, render(cls, rng, size, frames), fps, codec)
            written.append(path)
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/shapes_video")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=640)
    ap.add_argument("--val", type=int, default=160)
    ap.add_argument("--test", type=int, default=160)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--codec", default="mp4v", choices=sorted(CODECS))
    a = ap.parse_args()
    tmp = a.out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, a.seed, (("train", a.train), ("val", a.val), ("test", a.test)), a.size, a.frames, a.fps, a.codec)
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(tmp, a.out)  # the data folder appears complete or not at all
    print(f"wrote {a.train + a.val + a.test} videos of {len(CLASSES)} classes to {a.out}")


if __name__ == "__main__":
    main()
