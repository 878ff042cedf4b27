"""dlib's HOG detector and 68-point predictor on world clips: detection rate and landmark error per size.

    python benchmarks/world_dlib.py [--clips 12] [--seconds 2] [--sizes 128 256 512]

Every 5th frame of ``clips`` talking clips (identity k, scene k) per size; landmark error is the mean
point-to-point distance to the labels in px and normalised by the outer-eye-corner distance (NME).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from avatarv.world import make_clip
from avatarv.world.facecheck import check_frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        frames, lms = [], []
        for k in range(args.clips):
            clip = make_clip(k, k, args.seconds, size, args.seed)
            frames.append(clip.frames[::5])
            lms.append(clip.labels.landmarks[::5])
        check = check_frames(np.concatenate(frames), np.concatenate(lms))
        rows.append({"size": size, **check.summary()})
        s = rows[-1]
        print(f"{size:4d} px: detected {s['detection_rate']:.1%} of {s['frames']} frames, "
              f"landmark error {s['error_px']:.2f} px, NME {s['nme']:.3f} (median {s['nme_median']:.3f})")
    print(json.dumps({"benchmark": "world_dlib", "results": rows}))


if __name__ == "__main__":
    main()
