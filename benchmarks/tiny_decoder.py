"""The tiny video decoder against the world VAE's full decoder: decode speed, fidelity, mouth readability.

On held-out world identities (10000+, scenes 100+: the clips of vae_roundtrip.py's mouth test), each
``--chunk``-frame clip is encoded once by the full encoder and decoded by both decoders. Printed:

* decode wall time per chunk (median of ``--repeats``, full and tiny alternating, same thread count, one run:
  the ratio is the figure; the load average is printed beside it, other processes share the CPU);
* PSNR of tiny vs full, and of each vs the original frames (clips' mean MSE, in dB), also over the last third
  of each chunk's frames alone (where a decoder with a short memory loses the colour latent 0 carries);
* ``--baseline DIR``: a second tiny decoder in the same run (e.g. the previous weights), same figures;
* the world analyzer's mouth opening vs the labels after a round trip through each
  (vae_roundtrip.py ``mouth_readability``: Pearson r, std ratio, mouth-box PSNR);
* a PNG (``--png``): rows of frames, columns original | full decoder | tiny decoder.

Ends with one JSON line (CPU from ``lscpu``).

    OMP_NUM_THREADS=1 python benchmarks/tiny_decoder.py --tiny checkpoints/world-small/tiny_decoder \
        --png benchmarks/results/tiny-decoder.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vae_roundtrip import db, mouth_readability  # noqa: E402


class MemoEncode:
    """A VAE whose ``encode`` remembers its answers (both decoders read the same latents; encoding twice
    would double the benchmark's time and change nothing)."""

    def __init__(self, vae, cache: dict):
        self.vae, self.cache = vae, cache

    def encode(self, frames: np.ndarray):
        key = hash(np.ascontiguousarray(frames).tobytes())
        if key not in self.cache:
            self.cache[key] = self.vae.encode(frames)
        return self.cache[key]

    def decode(self, latents):
        return self.vae.decode(latents)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def write_png(path: str, rows: list[np.ndarray]) -> None:
    """``rows``: ``[original, full, tiny]`` frames ``[H, W, 3]`` each, per row; 2-px gaps, 2× nearest zoom."""
    from PIL import Image

    gap = 2
    h, w = rows[0][0].shape[:2]
    canvas = np.full((len(rows) * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = frame
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).resize((canvas.shape[1] * 2, canvas.shape[0] * 2), Image.NEAREST).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", default="checkpoints/world-small/vae")
    ap.add_argument("--tiny", default="checkpoints/world-small/tiny_decoder")
    ap.add_argument("--ids", type=int, default=8, help="held-out identities (10000+), 2 scenes each")
    ap.add_argument("--chunk", type=int, default=33, help="frames per clip (4k+1)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timed decodes per decoder (median)")
    ap.add_argument("--baseline", default=None, help="a second tiny decoder folder, compared in the same run")
    ap.add_argument("--png", default=None, help="original | full | tiny frames of one held-out clip")
    args = ap.parse_args()

    from avatarv.models.vae import VideoVAE
    from avatarv.models.vae.tiny_decoder import FastDecodeVAE
    from avatarv.world import make_clip
    from avatarv.world.analyzer import WorldAnalyzer

    torch.manual_seed(0)
    full = VideoVAE.from_pretrained(args.vae)
    fast = FastDecodeVAE.from_folder(full, args.tiny)
    base = FastDecodeVAE.from_folder(full, args.baseline) if args.baseline else None
    threads = torch.get_num_threads()
    made = [make_clip(i, 100 + s, seconds=args.chunk / 25, size=args.size, seed=1)
            for i in range(10_000, 10_000 + args.ids) for s in range(2)]
    labelled = [(c.frames[: args.chunk], c.labels.mouth_open[: args.chunk], c.labels.landmarks[: args.chunk])
                for c in made]
    cache: dict = {}
    memo_full, memo_fast = MemoEncode(full, cache), MemoEncode(fast, cache)

    # fidelity: every clip through both decoders (latents encoded once)
    sq: dict[str, list[float]] = {}
    late = slice(args.chunk - args.chunk // 3, None)  # the last third of a chunk's frames
    png_rows = []
    for k, (frames, _, _) in enumerate(labelled):
        z = memo_full.encode(frames)
        outs = {"full": full.decode(z), "tiny": fast.decode(z)}
        if base is not None:
            outs["baseline"] = base.decode(z)
        assert all(o.shape == frames.shape and o.dtype == np.uint8 for o in outs.values())
        sq.setdefault("tiny vs full", []).append(mse(outs["tiny"], outs["full"]))
        for name, out in outs.items():
            sq.setdefault(f"{name} vs original", []).append(mse(out, frames))
            sq.setdefault(f"{name} vs original, last third", []).append(mse(out[late], frames[late]))
        if k == 0:
            png_rows = [[frames[t], outs["full"][t], outs["tiny"][t]] for t in (0, 4, 12, 20, args.chunk - 1)]
    psnr = {name: float(db(np.mean(v))) for name, v in sq.items()}

    # speed: one chunk's latents, decoders alternating, same threads, same run
    z = memo_full.encode(labelled[0][0])
    fast.decode(z)  # warm-up (allocator, oneDNN primitives)
    t_full, t_tiny = [], []
    for _ in range(args.repeats):
        t_full.append(timed(full.decode, z))
        t_tiny.append(timed(fast.decode, z))
    sec_full, sec_tiny = float(np.median(t_full)), float(np.median(t_tiny))
    load = os.getloadavg()

    analyzer = WorldAnalyzer.load()
    mouth = {"full": mouth_readability(memo_full, analyzer, labelled),
             "tiny": mouth_readability(memo_fast, analyzer, labelled)}
    if args.png:
        write_png(args.png, png_rows)

    from avatarv.precision import cpu_model

    cpu = cpu_model()
    params = sum(p.numel() for p in fast.decoder.parameters())
    print(f"CPU: {cpu}, {threads} thread(s), load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print(f"held-out clips: {len(labelled)} × {args.chunk} frames at {args.size}², latents {tuple(z.shape)}; "
          f"tiny decoder {params / 1e6:.2f} M parameters ({args.tiny})\n")
    print(f"{'decoder':<8} {'decode s/chunk':>14} {'PSNR vs original dB':>20} {'last third dB':>13} "
          f"{'mouth r orig':>12} {'mouth r trip':>12} {'std ratio':>9} {'mouth PSNR dB':>13}")
    for name, sec in (("full", sec_full), ("tiny", sec_tiny)):
        m = mouth[name]
        print(f"{name:<8} {sec:14.3f} {psnr[f'{name} vs original']:20.2f} "
              f"{psnr[f'{name} vs original, last third']:13.2f} {m['r_orig']:12.3f} "
              f"{m['r_recon']:12.3f} {m['std_ratio']:9.3f} {m['mouth_psnr']:13.2f}")
    if base is not None:
        print(f"{'baseline':<8} {'':>14} {psnr['baseline vs original']:20.2f} "
              f"{psnr['baseline vs original, last third']:13.2f}  ({args.baseline})")
    speedup = sec_full / sec_tiny
    gap = psnr["full vs original"] - psnr["tiny vs original"]
    print(f"\nspeed-up full / tiny: {speedup:.1f}× (target ≥ 5×); PSNR tiny vs full decoder: "
          f"{psnr['tiny vs full']:.2f} dB; PSNR to originals, full − tiny: {gap:+.2f} dB (target ≤ 0.5)")
    if args.png:
        print(f"frames (original | full | tiny; frames 0, 4, 12, 20, {args.chunk - 1}): {args.png}")
    record = {"bench": "tiny_decoder", "cpu": cpu, "threads": threads, "load1": round(load[0], 2),
              "clips": len(labelled), "chunk_frames": args.chunk, "size": args.size, "tiny_params": params,
              "decode_s_full": round(sec_full, 3), "decode_s_tiny": round(sec_tiny, 3),
              "speedup": round(speedup, 2), "psnr_tiny_vs_full": round(psnr["tiny vs full"], 2),
              "psnr_full_vs_orig": round(psnr["full vs original"], 2),
              "psnr_tiny_vs_orig": round(psnr["tiny vs original"], 2), "psnr_gap_db": round(gap, 2),
              "psnr_last_third": {k.split(" vs ")[0]: round(v, 2) for k, v in psnr.items() if "last third" in k},
              "psnr_baseline_vs_orig": round(psnr["baseline vs original"], 2) if base is not None else None,
              "mouth": {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in mouth.items()},
              "targets_met": bool(speedup >= 5 and gap <= 0.5)}
    print(json.dumps(record))


if __name__ == "__main__":
    main()
