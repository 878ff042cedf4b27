"""The identity graph's face thresholds measured on real faces, per identity backend.

    python benchmarks/identity_thresholds_real.py [--frames 12]

For each of the five real clips of ``../shared/real/clips`` (five different people) ``--frames`` frames are
sampled evenly; dlib HOG finds the largest face and each backend embeds it. Two levels are measured:

- frame pairs: same person = two frames of one clip; different people = frames of two clips;
- clip means (what ``identity_graph`` compares: ``ClipIdentity`` averages ``samples`` = 6 frames a clip):
  each clip's first and second half (6 frames each) are two "clips"; same person = a clip's two halves,
  different people = halves of two clips.

Distances are the backend's own (``avatarv.data.curation.stages.identity.face_distance``: dlib Euclidean on
raw descriptors, the world embedder 1 - cosine). The real threshold is the midpoint of the gap between the
largest same-person and the smallest different-person clip-mean distance; the errors that remain at it are
counted on frame pairs (a single-frame comparison is noisier than a clip mean). ``--world N`` measures the same
clip-mean distances on the world identity set (N identities x 3 scenes), where the same person is seen in other
scenes. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import combinations
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "clips"


def embeddings(backend: str, frames: int, clips: list[Path]) -> dict[str, np.ndarray]:
    """clip name -> [frames, D] embeddings of the largest face (frames without a face are skipped)."""
    from avatarv.eval.identity import get_identity_embedder, largest_box
    from avatarv.media import detect_faces, read_video

    emb = get_identity_embedder(backend)
    out = {}
    for path in clips:
        video = read_video(path, fps=25.0)
        rows = []
        for t in np.linspace(0, video.num_frames - 1, frames).astype(int):
            boxes = [(b.left, b.top, b.right, b.bottom) for b in detect_faces(video.frames[t])]
            if boxes:
                rows.append(emb.embed_faces(video.frames[t], [largest_box(boxes)])[0])
        out[path.stem] = np.array(rows)
    return out


def measure(backend: str, frames: int) -> dict:
    from avatarv.data.curation.stages.identity import face_distance

    e = embeddings(backend, frames, sorted(REAL.glob("*.mp4")))
    names = sorted(e)
    same = [float(face_distance(backend, a, b)) for n in names for a, b in combinations(e[n], 2)]
    diff = [float(face_distance(backend, a, b)) for n, m in combinations(names, 2) for a in e[n] for b in e[m]]
    per_clip = {n: [float(face_distance(backend, a, b)) for a, b in combinations(e[n], 2)] for n in names}
    halves = {n: (e[n][: len(e[n]) // 2].mean(0), e[n][len(e[n]) // 2 :].mean(0)) for n in names}
    clip_same = {n: float(face_distance(backend, *halves[n])) for n in names}
    clip_diff = [float(face_distance(backend, halves[n][i], halves[m][j]))
                 for n, m in combinations(names, 2) for i in (0, 1) for j in (0, 1)]
    lo, hi = max(clip_same.values()), min(clip_diff)
    threshold = (lo + hi) / 2
    closest = min(((n, m) for n, m in combinations(names, 2)),
                  key=lambda nm: min(float(face_distance(backend, halves[nm[0]][i], halves[nm[1]][j]))
                                     for i in (0, 1) for j in (0, 1)))
    return {
        "backend": backend, "faces": {n: len(e[n]) for n in names},
        "frame_same_mean": {n: round(float(np.mean(v)), 3) for n, v in per_clip.items()},
        "frame_same_max": round(max(same), 3), "frame_diff_min": round(min(diff), 3),
        "frame_diff_mean": round(float(np.mean(diff)), 3),
        "clip_same": {n: round(v, 3) for n, v in clip_same.items()}, "clip_same_max": round(lo, 3),
        "clip_diff_min": round(hi, 3), "closest_people": list(closest), "clip_diff_mean": round(float(np.mean(clip_diff)), 3),
        "separable": lo < hi, "threshold": round(threshold, 3),
        "frame_pairs_split": round(float(np.mean(np.array(same) >= threshold)), 4),
        "frame_pairs_merged": round(float(np.mean(np.array(diff) < threshold)), 4),
    }


def measure_world(backend: str, frames: int, identities: int, scenes: int) -> dict:
    """The world identity set (``worldset.make_identity_set``): one clip per (identity, scene), so same person
    = the same identity in another scene (clip means of 6 frames), different = two identities."""
    import tempfile

    from avatarv.data.curation.stages.identity import face_distance
    from avatarv.data.curation.worldset import make_identity_set

    with tempfile.TemporaryDirectory() as d:
        e = embeddings(backend, frames, make_identity_set(d, identities, scenes))
    mean = {n: v.mean(0) for n, v in e.items() if len(v)}
    ident = {n: n.split("_")[0] for n in mean}
    same = [float(face_distance(backend, mean[a], mean[b])) for a, b in combinations(sorted(mean), 2)
            if ident[a] == ident[b]]
    diff = [float(face_distance(backend, mean[a], mean[b])) for a, b in combinations(sorted(mean), 2)
            if ident[a] != ident[b]]
    lo, hi = max(same), min(diff)
    return {"backend": backend, "footage": "world", "clips": len(mean), "clip_same_mean": round(float(np.mean(same)), 3),
            "clip_same_max": round(lo, 3), "clip_diff_min": round(hi, 3), "clip_diff_mean": round(float(np.mean(diff)), 3),
            "separable": lo < hi, "threshold": round((lo + hi) / 2, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--backends", default="dlib,world")
    ap.add_argument("--world", type=int, default=0, metavar="IDENTITIES",
                    help="also measure on the world identity set with this many identities (3 scenes each)")
    args = ap.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"avatarv: {REAL}: real clips not found (expected ../shared/real beside the repository)")
    t0 = time.time()
    rows = [measure(b, args.frames) for b in args.backends.split(",")]
    print(f"{'backend':8} {'same frame mean (per clip)':44} {'same max':>8} {'diff min':>8} {'diff mean':>9} "
          f"{'clip same max':>13} {'clip diff min':>13} {'threshold':>9} {'split':>6} {'merged':>6}")
    for r in rows:
        means = " ".join(f"{v:.2f}" for v in r["frame_same_mean"].values())
        print(f"{r['backend']:8} {means:44} {r['frame_same_max']:8.3f} {r['frame_diff_min']:8.3f} "
              f"{r['frame_diff_mean']:9.3f} {r['clip_same_max']:13.3f} {r['clip_diff_min']:13.3f} "
              f"{r['threshold']:9.3f} {r['frame_pairs_split']:6.3f} {r['frame_pairs_merged']:6.3f}")
    world = [measure_world(b, 6, args.world, 3) for b in args.backends.split(",")] if args.world else []
    for r in world:
        print(f"world footage, {r['backend']}: {r['clips']} clips, same person across scenes mean "
              f"{r['clip_same_mean']:.3f} max {r['clip_same_max']:.3f}; different min {r['clip_diff_min']:.3f} "
              f"mean {r['clip_diff_mean']:.3f}; midpoint {r['threshold']:.3f}")
    print(json.dumps({"benchmark": "identity_thresholds_real", "frames": args.frames, "rows": rows, "world": world,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
