"""The world cross-scene benchmark: the seed's 70 cases (same / cross / generated scene), made by the world.

    avatarv eval make-bench --out bench/world70          # 70 cases, 128 px, 4 s clips

Each case is a held-out identity (ids from 3 000 000: never seen by any world-trained model) in two clips:

- ``reference``: the identity in scene A (clip 0);
- ``driving``: the identity in the target scene, other words and other motion (clip 1). Its first frame is the
  scene image, its audio the driving speech, and the clip itself is the ground truth (the passthrough system);
- the target scene is scene A (``same``), another filmed scene B (``cross``: "a different real video of the same
  person"), or a scene nobody filmed (``generated``: ids from 3 500 000; its first frame stands for the
  identity-preserving image engine's output, a picture of the person in a new place).

The seed gives 70 cases and three conditions but not how many of each; we split them as evenly as 70 allows
(24 same, 23 cross, 23 generated). ``behaviour`` is world-only: each case also records the identity's true
behaviour traits in ``traits/<case>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avatarv.eval.benchmark import BenchmarkCase, Manifest

BENCH_IDS, BENCH_SCENES, GENERATED_SCENES = 3_000_000, 300_000, 3_500_000
SPLIT_70 = {"same": 24, "cross": 23, "generated": 23}


def split(n: int) -> list[str]:
    """Scene condition of each of ``n`` cases: the seed's three conditions, as even as ``n`` allows, interleaved."""
    base, extra = divmod(n, 3)
    counts = {s: base + (i < extra) for i, s in enumerate(("same", "cross", "generated"))}
    order, left = [], dict(counts)
    while len(order) < n:
        for s in ("same", "cross", "generated"):
            if left[s]:
                order.append(s)
                left[s] -= 1
    return order


def make_world_bench(out: str | Path, n_cases: int = 70, seconds: float = 4.0, size: int = 128, seed: int = 0,
                     progress=None) -> Path:
    """Write ``n_cases`` world cases (mp4 with sound, scene PNGs, traits) and ``manifest.json`` under ``out``."""
    from PIL import Image

    from avatarv.world import make_clip

    root = Path(out)
    for sub in ("refs", "driving", "scenes", "traits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cases = []
    for k, scene in enumerate(split(n_cases)):
        ident = BENCH_IDS + k
        scene_a = BENCH_SCENES + 2 * k
        target = {"same": scene_a, "cross": scene_a + 1, "generated": GENERATED_SCENES + k}[scene]
        cid = f"c{k:03d}"
        ref = make_clip(ident, scene_a, seconds, size, seed, clip_index=0)
        drv = make_clip(ident, target, seconds, size, seed, clip_index=1)
        ref.save(root / "refs" / f"{cid}.mp4")
        drv.save(root / "driving" / f"{cid}.mp4")
        Image.fromarray(drv.frames[0]).save(root / "scenes" / f"{cid}.png")
        (root / "traits" / f"{cid}.json").write_text(json.dumps(
            {"identity_id": ident, "reference_scene": scene_a, "target_scene": target,
             "behaviour": ref.meta["identity"]["behaviour"]}, indent=1))
        cases.append(BenchmarkCase(
            case_id=cid, identity=f"id{ident}", scene=scene, reference=root / "refs" / f"{cid}.mp4",
            driving=root / "driving" / f"{cid}.mp4", scene_image=root / "scenes" / f"{cid}.png",
            prompt="a person talking to the camera"))
        if progress is not None:
            progress(1)
    manifest = Manifest(name=f"world-{n_cases}", cases=cases, root=root)
    manifest.eval_options = {"min_face_size": 0.2 * size, "world": True, "size": size, "seed": seed}
    return manifest.save(root)


def counts(manifest: Manifest) -> dict[str, int]:
    scenes = np.array([c.scene for c in manifest.cases])
    return {s: int((scenes == s).sum()) for s in ("same", "cross", "generated")}
