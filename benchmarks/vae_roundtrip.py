"""How much does the world VAE lose in one (and in repeated) encode/decode round trips?

For N world frames (first frames of clips; identities from the VAE's training range, the DiT-only range and
a held-out range) it prints PSNR and the worst per-channel mean shift after one round trip, whether dlib HOG
still finds the face, and PSNR after k repeated round trips (what chunk-to-chunk re-encoding compounds).

    python benchmarks/vae_roundtrip.py --vae checkpoints/world-small/vae
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", default="checkpoints/world-small/vae")
    ap.add_argument("--n", type=int, default=8, help="frames per identity range")
    ap.add_argument("--trips", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()

    from avatarv.eval.faces import DlibHogDetector
    from avatarv.models.vae import VideoVAE
    from avatarv.world import make_clip

    torch.manual_seed(0)
    vae = VideoVAE.from_pretrained(args.vae)
    detector = DlibHogDetector()
    ranges = {"vae-train ids": 0, "dit-only ids": 100, "held-out ids": 10_000}
    print(f"{'identities':<14} {'PSNR dB':>8} {'max |Δ channel mean|':>21} {'faces kept':>11}  PSNR after 1..{args.trips} trips")
    for name, first in ranges.items():
        ps, shifts, kept, faces, trips = [], [], 0, 0, []
        for i in range(first, first + args.n):
            frame = make_clip(i, i * 10, 0.2, args.size, 0, clip_index=0).frames[0]
            has_face = bool(detector.detect(frame))
            faces += has_face
            x, curve = frame, []
            for _ in range(args.trips):
                x = vae.decode(vae.encode(x[None]))[0]
                curve.append(psnr(x, frame))
                if len(curve) == 1:
                    ps.append(curve[0])
                    shifts.append(np.abs(x.reshape(-1, 3).mean(0) - frame.reshape(-1, 3).mean(0).astype(float)).max())
                    kept += has_face and bool(detector.detect(x))
            trips.append(curve)
        print(f"{name:<14} {np.mean(ps):8.2f} {np.mean(shifts):21.1f} {f'{kept}/{faces}':>11}  "
              + " ".join(f"{v:.1f}" for v in np.mean(trips, 0)))


if __name__ == "__main__":
    main()
