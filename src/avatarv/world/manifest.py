"""A world dataset: K clips of N identities in M scenes, written as mp4 + labels, listed in a manifest.

Clip k shows identity ``k mod N`` in scene ``(identity + k div N) mod M``, so every identity is filmed in
several scenes (cross-scene pairs exist as soon as K ≥ 2N and M ≥ 2). ``manifest.json`` lists the clips,
the traits of every identity and scene, and the cross-scene pairs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from avatarv.errors import ConfigError
from avatarv.world.clip import check_size, make_clip
from avatarv.world.identity import FPS, sample_identity
from avatarv.world.scene import sample_scene
from avatarv.world.seeds import rng

MANIFEST = "manifest.json"


def clip_plan(identities: int, scenes: int, clips: int, seed: int, desync_fraction: float = 0.0) -> list[dict]:
    """Which identity, scene and audio offset each clip gets."""
    if identities < 1 or scenes < 1 or clips < 1:
        raise ConfigError(f"need at least one identity, scene and clip (got {identities}, {scenes}, {clips})")
    if not 0.0 <= desync_fraction <= 1.0:
        raise ConfigError(f"desync fraction {desync_fraction}: expected a number in [0, 1]")
    r = rng(seed, "manifest.desync")
    plan = []
    for k in range(clips):
        ident = k % identities
        offset = 0
        if r.random() < desync_fraction:
            offset = int(r.choice([-1, 1]) * r.integers(3, 13))
        plan.append({"clip_index": k, "identity_id": ident, "scene_id": (ident + k // identities) % scenes,
                     "audio_offset_frames": offset})
    return plan


def make_dataset(
    out: str | Path,
    identities: int = 4,
    scenes: int = 4,
    clips: int = 8,
    seconds: float = 4.0,
    size: int = 128,
    seed: int = 0,
    desync_fraction: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the clips under ``out/clips/`` and ``out/manifest.json``; returns the manifest path."""
    size = check_size(size)
    if seconds <= 0:
        raise ConfigError(f"clip length {seconds} s: expected a positive number of seconds")
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    for item in clip_plan(identities, scenes, clips, seed, desync_fraction):
        name = f"i{item['identity_id']:04d}_s{item['scene_id']:03d}_c{item['clip_index']:05d}"
        clip = make_clip(item["identity_id"], item["scene_id"], seconds, size, seed, item["clip_index"],
                         item["audio_offset_frames"])
        path = clip.save(out / "clips" / f"{name}.mp4")
        entries.append({**item, "video": f"clips/{path.name}", "labels": f"clips/{name}.npz",
                        "meta": f"clips/{name}.json", "n_frames": len(clip.frames),
                        "mouth_lag_frames": clip.meta["mouth_lag_frames"]})
        if progress is not None:
            progress(1)
    by_identity: dict[int, list[dict]] = {}
    for e in entries:
        by_identity.setdefault(e["identity_id"], []).append(e)
    pairs = [
        [a["video"], b["video"]]
        for group in by_identity.values()
        for i, a in enumerate(group)
        for b in group[i + 1 :]
        if a["scene_id"] != b["scene_id"]
    ]
    used_ids = sorted(by_identity)
    used_scenes = sorted({e["scene_id"] for e in entries})
    doc = {
        "world": {"seed": seed, "identities": identities, "scenes": scenes, "clips": clips, "seconds": seconds,
                  "size": size, "fps": FPS, "sample_rate": 16000, "desync_fraction": desync_fraction},
        "clips": entries,
        "identities": {str(i): sample_identity(i, seed).traits() for i in used_ids},
        "scenes": {str(s): sample_scene(s, seed).traits() for s in used_scenes},
        "cross_scene_pairs": pairs,
    }
    path = out / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path
