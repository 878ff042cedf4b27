"""Test and benchmark material from the synthetic world: clips, raw footage with labelled defects, bad files.

Labels live beside each video (``world/raw.py``: ``name.json`` intervals + shots + duplicates, ``name.npz``
per-frame faces/identity). Label files are not videos, so the engine ignores them in the input folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_clip_set(out_dir: str | Path, n: int = 4, seconds: float = 2.0, size: int = 64, seed: int = 0) -> list[Path]:
    """``n`` short talking clips (identity k % 8, scene (3k + 1) % 8) as mp4 with labels."""
    from avatarv.world import make_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = out / f"clip_{k:03d}.mp4"
        if not path.exists():
            make_clip(k % 8, (3 * k + 1) % 8, seconds, size, seed, clip_index=k).save(path)
        paths.append(path)
    return paths


# two short raw videos that share out the defects, so every filter is scored on a small budget
SPLIT_DEFECTS = (("static", "choppy", "no_person", "blur", "shake"),
                 ("text", "desync", "second_speaker", "dark", "static"))


def make_raw_set(out_dir: str | Path, videos: int = 1, seconds: float = 40.0, size: int = 128, seed: int = 0,
                 identities: int = 8, scenes: int = 8, defects: tuple | None = None) -> list[Path]:
    """``videos`` raw videos (``raw_k.mp4`` + labels + near-duplicate files); reuses files already there.
    ``defects``: one tuple of defect kinds per video (default: every kind in each)."""
    from avatarv.world.raw import DEFECTS, make_raw

    out = Path(out_dir)
    paths = []
    for k in range(videos):
        path = out / f"raw_{k:03d}.mp4"
        if not (out / f"raw_{k:03d}.json").exists():
            kinds = defects[k % len(defects)] if defects else DEFECTS
            make_raw(seconds, size, seed, k, identities, scenes, defects=kinds).save(out, f"raw_{k:03d}")
        paths.append(path)
    return paths


def make_bad_inputs(out_dir: str | Path, size: int = 64, seed: int = 0) -> dict[str, Path]:
    """A corrupt file (random bytes), a truncated mp4 (first half of a good one) and a video without audio."""
    from avatarv.media import write_mp4
    from avatarv.world import make_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(seed)
    corrupt = out / "bad_corrupt.mp4"
    corrupt.write_bytes(r.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    clip = make_clip(0, 0, 2.0, size, seed)
    good = write_mp4(out / "tmp_good.mp4", clip.frames, 25, clip.audio)
    data = good.read_bytes()
    truncated = out / "bad_truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    good.unlink()
    silent = write_mp4(out / "bad_no_audio.mp4", clip.frames, 25, None)
    return {"corrupt": corrupt, "truncated": truncated, "no_audio": silent}


def make_identity_set(out_dir: str | Path, identities: int = 4, scenes: int = 3, seconds: float = 2.6,
                      size: int = 128, seed: int = 0) -> list[Path]:
    """One clip per (identity, scene): ``id{i}_sc{s}.mp4`` with its labels (``.json`` meta holds the ids)."""
    from avatarv.world import make_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(identities):
        for s in range(scenes):
            path = out / f"id{i}_sc{s}.mp4"
            if not path.exists():
                make_clip(i, s, seconds, size, seed, clip_index=s).save(path)
            paths.append(path)
    return paths
