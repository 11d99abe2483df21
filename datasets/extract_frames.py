#!/usr/bin/env python
"""Extract every frame of a tree of videos into frame folders, the fast path of the video datasets.

    python datasets/extract_frames.py --src data/kinetics400 --dst data/kinetics400_frames [--workers 4]
        [--quality 90] [--short-side 128]

``<src>/a/b/video.mp4`` becomes ``<dst>/a/b/video/000001.jpg, 000002.jpg ...`` plus ``fps.txt``
(the frame rate, so ``frame_rate`` resampling still works). Point ``data.root`` at ``<dst>``: the
video datasets take a folder of frames wherever they expect a video file (``VideoFolderDataset``
finds the folders; UCF101 / HMDB51 lists naming ``video.avi`` find ``video/``). Reading a clip then
decodes only its frames (JPEG) instead of a video stream from its previous key frame.
``--short-side`` resizes frames (keeping the aspect ratio) so their shorter side has that many pixels.
Videos already extracted (a folder with ``fps.txt``) are skipped, so an interrupted run can continue.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from multiprocessing import Pool
from typing import Optional, Tuple

import cv2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torchcv.data.video_io import FPS_FILE, VIDEO_EXTENSIONS  # noqa: E402


def extract(job: Tuple[str, str, int, Optional[int]]) -> Tuple[str, int, str]:
    """Write the frames of one video; returns (video, frames written, error or '')."""
    src, dst, quality, short_side = job
    if os.path.isfile(os.path.join(dst, FPS_FILE)):
        return src, 0, ""
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        return src, 0, "cannot open"
    fps = cap.get(cv2.CAP_PROP_FPS)
    tmp = dst + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if short_side:
            h, w = frame.shape[:2]
            k = short_side / min(h, w)
            frame = cv2.resize(frame, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        n += 1
        cv2.imwrite(os.path.join(tmp, f"{n:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    cap.release()
    if n == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return src, 0, "no frames decoded"
    with open(os.path.join(tmp, FPS_FILE), "w") as f:
        f.write(f"{fps:.6g}\n")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)  # a frame folder appears complete or not at all
    return src, n, ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="folder of videos (searched recursively)")
    ap.add_argument("--dst", required=True, help="output folder: the same tree, a frame folder per video")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--short-side", type=int, default=None, help="resize so the shorter side has this many pixels")
    a = ap.parse_args()
    if not os.path.isdir(a.src):
        sys.exit(f"error: --src {a.src} is not a folder")
    jobs = []
    for folder, _, files in os.walk(a.src):
        for f in sorted(files):
            if f.lower().endswith(VIDEO_EXTENSIONS):
                rel = os.path.relpath(os.path.join(folder, f), a.src)
                jobs.append((os.path.join(a.src, rel), os.path.join(a.dst, os.path.splitext(rel)[0]), a.quality,
                             a.short_side))
    if not jobs:
        sys.exit(f"error: no videos ({', '.join(VIDEO_EXTENSIONS)}) under {a.src}")
    failed = []
    with Pool(max(1, a.workers)) as pool:
        for k, (src, n, err) in enumerate(pool.imap_unordered(extract, jobs), 1):
            if err:
                failed.append(f"{src}: {err}")
            if k % 100 == 0 or k == len(jobs):
                print(f"{k}/{len(jobs)} videos", flush=True)
    print(f"extracted {len(jobs) - len(failed)} videos to {a.dst}" + (f"; {len(failed)} failed:" if failed else ""))
    for line in failed[:20]:
        print("  " + line)


if __name__ == "__main__":
    main()
