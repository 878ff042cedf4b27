"""The tiny tail encoder vs the full VAE encoder on the chunk loop's job: 5-frame prefixes of held-out world people
(the clip itself and its round trip through the full encoder and the tiny decoder, as the trainer draws them).

Per window: the latents' MSE to the full encoder's (normalised units) and its ratio to their variance; the PSNR
between the frames the tiny decoder makes from each; wall seconds per prefix for both encoders, alternating, in
this process. Ends with one JSON line (CPU named).

    python benchmarks/tiny_encoder.py --checkpoint checkpoints/world-small-distilled [--clips 8]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "world-small-distilled")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="timed encodes per window and encoder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "tiny-encoder")
    args = ap.parse_args()

    import torch

    from avatarv.models.vae import VideoVAE
    from avatarv.models.vae.tiny_decoder import FastDecodeVAE
    from avatarv.models.vae.tiny_encoder import TinyVideoEncoder
    from avatarv.precision import cpu_model
    from avatarv.training.tiny_encoder import TinyEncoderTrainConfig, WindowPool, heldout_metrics, pool_keys

    vae = VideoVAE.from_pretrained(args.checkpoint / "vae")
    fast = FastDecodeVAE.from_folder(vae, args.checkpoint / "tiny_decoder")
    tiny = TinyVideoEncoder.from_pretrained(args.checkpoint / "tiny_encoder")
    cfg = replace(TinyEncoderTrainConfig(), heldout_clips=args.clips)
    _, heldout = pool_keys(cfg)
    pool = WindowPool(vae, fast, cfg, heldout, args.out / "pool", "held-out windows")
    accuracy = heldout_metrics(tiny, pool, fast)
    full_s, tiny_s = [], []
    with torch.no_grad():
        for frames in pool.frames:
            for _ in range(args.repeats):
                t = time.perf_counter()
                vae.encode(frames)
                full_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                tiny.encode(frames)
                tiny_s.append(time.perf_counter() - t)
    full, small = float(np.median(full_s)), float(np.median(tiny_s))
    doc = {"bench": "tiny_encoder", "cpu": cpu_model(), "threads": torch.get_num_threads(),
           "checkpoint": str(args.checkpoint), "clips": args.clips, **accuracy,
           "full_encode_s": round(full, 4), "tiny_encode_s": round(small, 4), "speedup": round(full / small, 2)}
    print(f"{accuracy['windows']} held-out prefixes of {cfg.window_frames} frames: latent MSE "
          f"{accuracy['latent_mse']:.4f} ({accuracy['latent_rel_mse']:.3f} of their variance), decoded PSNR tiny vs "
          f"full latents {accuracy['decoded_psnr_db']:.2f} dB; encode {full * 1e3:.1f} → {small * 1e3:.1f} ms "
          f"({full / small:.1f}×)")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
