"""Landmark SyncNet on the five real clips: offsets found with the audio shifted by +-2..+-10 frames.

    python benchmarks/landmark_sync_real.py [--weights src/avatarv/assets/eval/landmark_sync.safetensors] [--record]

Each real clip of ``../shared/real/clips`` is read at 25 fps with its audio (16 kHz mono); mediapipe FaceMesh gives
the lips; the audio is shifted in memory (``world.clip.offset_audio``: ``s`` > 0 advances the sound by ``s``
frames, zero-filled, so the offset should grow by ``s``) and ``eval.landmark_sync.evaluate_lips`` gives SyncNet's
offset and Sync-C. Two error measures per shifted case: against ``s`` (the clip taken as in sync: its own offset
0) and against ``own + s`` (``own`` = the offset measured on the unshifted clip); cases where ``own + s`` falls
outside the +-15 scan are counted apart (no scorer can find them). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REAL_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "clips"
SHIFTS = (-10, -8, -6, -4, -2, 0, 2, 4, 6, 8, 10)


def real_lip_tracks(clips_dir: Path = REAL_CLIPS) -> dict:
    """``{name: (LipTrack, audio [N] float32 16 kHz)}`` for every mp4 of ``clips_dir`` (face mesh at 25 fps)."""
    from avatarv.eval.landmark_sync import LipTrack
    from avatarv.media.face_mesh import face_mesh
    from avatarv.media.read import read_video

    out = {}
    for path in sorted(Path(clips_dir).glob("*.mp4")):
        video = read_video(path, fps=25.0, require_audio=True)
        out[path.stem] = (LipTrack.from_landmarks(face_mesh(video.frames).points), np.asarray(video.audio, np.float32))
    return out


def shift_rows(model, tracks: dict, shifts=SHIFTS) -> list[dict]:
    """One row per (clip, shift): detected offset, Sync-C, error vs ``s`` and vs the clip's own offset + ``s``."""
    from avatarv.eval.landmark_sync import evaluate_lips
    from avatarv.world.clip import offset_audio

    rows = []
    for name, (track, audio) in tracks.items():
        own = evaluate_lips(model, track, audio).offset
        for s in shifts:
            res = evaluate_lips(model, track, offset_audio(audio, s) if s else audio)
            rows.append({"clip": name, "shift": s, "offset": res.offset, "sync_c": round(res.sync_c, 3),
                         "err": res.offset - s, "err_own": res.offset - own - s})
    return rows


def summary(rows: list[dict], vshift: int = 15) -> dict:
    shifted = [r for r in rows if r["shift"] != 0]
    unshifted = [r for r in rows if r["shift"] == 0]
    # own + s outside the +-15 scan cannot be found by any scorer (a clip that reads -7 shifted by -10 should read -17)
    reachable = [r for r in shifted if abs(r["offset"] - r["err_own"]) <= vshift]
    return {
        "cases": len(shifted),
        "reachable": len(reachable),
        "within_1_own_reachable": float(np.mean([abs(r["err_own"]) <= 1 for r in reachable])),
        "within_1": float(np.mean([abs(r["err"]) <= 1 for r in shifted])),
        "within_1_own": float(np.mean([abs(r["err_own"]) <= 1 for r in shifted])),
        "exact": float(np.mean([r["err"] == 0 for r in shifted])),
        "unshifted_offsets": {r["clip"]: r["offset"] for r in unshifted},
        "unshifted_within_1": float(np.mean([abs(r["offset"]) <= 1 for r in unshifted])),
        "unshifted_within_3": float(np.mean([abs(r["offset"]) <= 3 for r in unshifted])),
        "sync_c_unshifted": float(np.mean([r["sync_c"] for r in unshifted])),
        "sync_c_shifted": float(np.mean([r["sync_c"] for r in shifted])),
    }


def main() -> None:
    from avatarv.eval.landmark_sync import DEFAULT_WEIGHTS, load_landmark_sync

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--clips", type=Path, default=REAL_CLIPS)
    parser.add_argument("--record", action="store_true", help="Also store the summary under real_clips in the "
                        "weights' .json (the figures shipped beside the weights).")
    args = parser.parse_args()
    t0 = time.perf_counter()
    model = load_landmark_sync(args.weights)
    tracks = real_lip_tracks(args.clips)
    t1 = time.perf_counter()
    rows = shift_rows(model, tracks)
    t2 = time.perf_counter()
    names = list(tracks)
    print(f"{'clip':28s} " + " ".join(f"{s:>+4d}" for s in SHIFTS) + "   (detected offset per audio shift; Sync-C at 0)")
    for name in names:
        r = [x for x in rows if x["clip"] == name]
        c0 = next(x["sync_c"] for x in r if x["shift"] == 0)
        print(f"{name:28s} " + " ".join(f"{x['offset']:>+4d}" for x in r) + f"   {c0:.2f}")
    s = summary(rows)
    s.update(face_mesh_s=round(t1 - t0, 1), scoring_s=round(t2 - t1, 1), weights=str(args.weights))
    print(f"within +-1 of the shift: {s['within_1']:.3f} ({s['cases']} cases); of own offset + shift: "
          f"{s['within_1_own']:.3f} (of the {s['reachable']} cases where own + shift lies in the +-15 scan: "
          f"{s['within_1_own_reachable']:.3f}); unshifted within +-1 of 0: {s['unshifted_within_1']:.2f}, "
          f"within +-3: {s['unshifted_within_3']:.2f}")
    print(json.dumps(s))
    if args.record:
        figures = args.weights.with_suffix(".json")
        doc = json.loads(figures.read_text()) if figures.is_file() else {}
        doc["real_clips"] = {k: v for k, v in s.items() if k != "weights"}
        tmp = figures.with_name(figures.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(figures)


if __name__ == "__main__":
    main()
