"""How much does the world VAE lose in one (and in repeated) encode/decode round trips?

For N world frames (first frames of clips; identities from the VAE's training range, the DiT-only range and
a held-out range) it prints PSNR and the worst per-channel mean shift after one round trip, whether dlib HOG
still finds the face, and PSNR after k repeated round trips (what chunk-to-chunk re-encoding compounds).
With ``--chunk F`` it also decodes held-out F-frame clips whole (the pipeline's chunks) and prints PSNR
every 4th frame: a causal decoder can hold frame 0 and lose the later frames, and how readable the mouth
stays: the world analyzer's mouth opening against the labels (Pearson r, std ratio) on the originals and on
the round trips, and PSNR inside the mouth boxes (what lip sync is read from; the whole-frame PSNR hides it).

Several ``--vae`` are measured on the same frames in one run; ``--png`` writes, for the held-out range,
the original frames beside each VAE's reconstruction (one column per VAE).

    python benchmarks/vae_roundtrip.py --vae checkpoints/world-small/vae --vae runs/world2/vae-decoder2/vae \
        --png benchmarks/results/vae-roundtrip.png
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from avatarv.eval.stats import pearson


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


RANGES = {"vae-train ids": 0, "dit-only ids": 100, "held-out ids": 10_000}


def frames_of(first: int, n: int, size: int) -> list[np.ndarray]:
    from avatarv.world import make_clip

    return [make_clip(i, i * 10, 0.2, size, 0, clip_index=0).frames[0] for i in range(first, first + n)]


def mean_lab(frame: np.ndarray) -> np.ndarray:
    """Mean CIE L*a*b* colour of an RGB uint8 frame (as benchmarks/longform.py measures colour drift)."""
    import cv2

    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)


def measure(vae, detector, frames: list[np.ndarray], trips: int) -> tuple[dict, list[np.ndarray]]:
    """One VAE on ``frames``: mean PSNR, worst channel-mean shift, faces kept, PSNR and colour ΔE (CIE76 of the
    mean L*a*b*) after 1..trips trips: the colour drift re-encoding alone adds, chunk after chunk."""
    ps, shifts, kept, faces, curves, des, recons = [], [], 0, 0, [], [], []
    for frame in frames:
        has_face = bool(detector.detect(frame))
        faces += has_face
        x, curve, de, lab0 = frame, [], [], mean_lab(frame)
        for _ in range(trips):
            x = vae.decode(vae.encode(x[None]))[0]
            curve.append(psnr(x, frame))
            de.append(float(np.linalg.norm(mean_lab(x) - lab0)))
            if len(curve) == 1:
                recons.append(x)
                ps.append(curve[0])
                shifts.append(np.abs(x.reshape(-1, 3).mean(0) - frame.reshape(-1, 3).mean(0).astype(float)).max())
                kept += has_face and bool(detector.detect(x))
        curves.append(curve)
        des.append(de)
    return {"psnr": float(np.mean(ps)), "shift": float(np.mean(shifts)), "kept": f"{kept}/{faces}",
            "trips": np.mean(curves, 0), "trips_de": np.mean(des, 0)}, recons


def chunk_mse(vae, clips: list[np.ndarray]) -> np.ndarray:
    """Squared error per frame of whole-clip round trips, averaged over clips. → ``[F]``."""
    return np.mean([((vae.decode(vae.encode(c)).astype(np.float64) - c) ** 2).mean(axis=(1, 2, 3)) for c in clips], 0)


def mouth_readability(vae, analyzer, clips: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """``clips``: (frames ``[T, H, W, 3]``, label mouth opening ``[T]``, landmarks ``[T, 68, 2]``). → the
    analyzer's mouth opening against the labels on the originals (``r_orig``) and on the round trips
    (``r_recon``, ``std_ratio`` = recon std / original std of the reading), and ``mouth_psnr`` (dB, pixels
    inside the mouth boxes of ``training.vae.mouth_boxes``, all clips pooled)."""
    from avatarv.training.vae import inside_boxes, mouth_boxes

    orig, recon, label, sq, n = [], [], [], 0.0, 0
    for frames, mouth, landmarks in clips:
        out = vae.decode(vae.encode(frames))
        orig.append(analyzer.predict(frames)["mouth_open"])
        recon.append(analyzer.predict(out)["mouth_open"])
        label.append(mouth)
        inside = inside_boxes(mouth_boxes(landmarks), *frames.shape[1:3]).numpy()  # [T, H, W]
        sq += float((((out.astype(np.float64) - frames) ** 2) * inside[..., None]).sum())
        n += int(inside.sum()) * 3
    o, r, y = np.concatenate(orig), np.concatenate(recon), np.concatenate(label)
    return {"r_orig": pearson(o, y), "r_recon": pearson(r, y),
            "std_ratio": float(r.std() / max(o.std(), 1e-8)), "mouth_psnr": float(db(sq / max(n, 1)))}


def db(mse) -> np.ndarray:
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", action="append", help="VAE folder (repeat to compare; default the shipped one)")
    ap.add_argument("--n", type=int, default=8, help="frames per identity range")
    ap.add_argument("--trips", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=33, help="frames of the whole-clip test (0: skip it)")
    ap.add_argument("--mouth-ids", type=int, default=8, help="held-out identities (2 clips each) of the mouth test")
    ap.add_argument("--png", default=None, help="write held-out originals beside each VAE's reconstructions")
    ap.add_argument("--dtype", default="fp32", help="encode/decode compute dtype: fp32 (default, exact) | bf16 | "
                    "auto (the precision policy's choice, as the pipeline runs them)")
    args = ap.parse_args()

    from avatarv.eval.faces import DlibHogDetector
    from avatarv.models.vae import VideoVAE
    from avatarv.precision import capability, compute_dtype, dtype_name
    from avatarv.world import make_clip

    torch.manual_seed(0)
    paths = args.vae or ["checkpoints/world-small/vae"]
    vaes = {p: VideoVAE.from_pretrained(p) for p in paths}
    dtype = compute_dtype("cpu", args.dtype)
    for vae in vaes.values():
        vae.compute_dtype = dtype
    detector = DlibHogDetector()
    frames = {name: frames_of(first, args.n, args.size) for name, first in RANGES.items()}
    heldout_recons = {}
    record: dict[str, dict] = {p: {} for p in paths}  # the closing JSON line
    print(f"{'VAE':<40} {'identities':<14} {'PSNR dB':>8} {'max |Δ channel mean|':>21} {'faces kept':>11}  "
          f"PSNR after 1..{args.trips} trips | colour ΔE after 1..{args.trips} trips")
    for path, vae in vaes.items():
        for name, fs in frames.items():
            m, recons = measure(vae, detector, fs, args.trips)
            if name == "held-out ids":
                heldout_recons[path] = recons
            record[path][name] = {"psnr": round(m["psnr"], 2), "shift": round(m["shift"], 1), "kept": m["kept"],
                                  "trips_psnr": [round(float(v), 2) for v in m["trips"]],
                                  "trips_de": [round(float(v), 2) for v in m["trips_de"]]}
            print(f"{path[-40:]:<40} {name:<14} {m['psnr']:8.2f} {m['shift']:21.1f} {m['kept']:>11}  "
                  + " ".join(f"{v:.1f}" for v in m["trips"]) + " | " + " ".join(f"{v:.1f}" for v in m["trips_de"]))
    if args.chunk:
        from avatarv.world.analyzer import WorldAnalyzer

        made = [make_clip(i, 100 + s, seconds=args.chunk / 25, size=args.size, seed=1)
                for i in range(10_000, 10_000 + args.mouth_ids) for s in range(2)]
        clips = [c.frames[: args.chunk] for c in made[:6]]
        labelled = [(c.frames[: args.chunk], c.labels.mouth_open[: args.chunk], c.labels.landmarks[: args.chunk])
                    for c in made]
        analyzer = WorldAnalyzer.load()
        print(f"\nheld-out {args.chunk}-frame clips decoded whole (6 clips): PSNR of frames 0, 4, 8, …")
        for path, vae in vaes.items():
            mse = chunk_mse(vae, clips)
            curve = db(mse)
            record[path][f"chunk{args.chunk}_psnr"] = round(float(db(mse.mean())), 2)  # of the clips' mean MSE
            print(f"{path[-40:]:<40} " + " ".join(f"{v:.1f}" for v in curve[::4]))
        print(f"\nthe mouth after a round trip ({len(labelled)} held-out clips): analyzer mouth opening vs labels")
        print(f"{'VAE':<40} {'r original':>10} {'r round trip':>12} {'std ratio':>9} {'mouth PSNR dB':>13}")
        for path, vae in vaes.items():
            m = mouth_readability(vae, analyzer, labelled)
            record[path]["mouth"] = {k: round(v, 3) for k, v in m.items()}
            print(f"{path[-40:]:<40} {m['r_orig']:10.3f} {m['r_recon']:12.3f} {m['std_ratio']:9.3f} "
                  f"{m['mouth_psnr']:13.2f}")
    if args.png:
        from PIL import Image

        rows = [np.concatenate([f, *(heldout_recons[p][i] for p in paths)], 1)
                for i, f in enumerate(frames["held-out ids"])]
        Image.fromarray(np.concatenate(rows, 0)).save(args.png)
        print(f"\n{args.png}: columns = original, " + ", ".join(paths))
    print(json.dumps({"bench": "vae_roundtrip", "dtype": dtype_name(dtype), "machine": capability(),
                      "vaes": record}))


if __name__ == "__main__":
    main()
