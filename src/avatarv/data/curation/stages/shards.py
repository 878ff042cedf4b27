"""Latent pre-encoding into training shards (seed: pre-encoded latents for training).

Writes the trainer's format, ``avatarv.data.shards`` (``shard-NNNNN.safetensors`` + ``index.json``, format
``avatarv-shards-v1``; the tensors of item ``i`` under ``"{i}/{field}"``, fields of
``avatarv.training.batch.Batch``). One item per cross-scene pair of the identity graph (and its reverse):

- ``latents`` ``[z, F, h, w]``: ``VideoVAE.encode`` of the target clip's first ``4(latents-1)+1`` frames,
  centre-cropped square around the face and resized to the preset's ``resolution``;
- ``audio`` ``[F, 4, n_mels]``: ``LogMelFeatures.latent_tokens`` of the clip's sound (preset ``audio_dim``);
- ``motion`` ``[F, motion_dim]``: ``avatarv.data.shards.motion_features`` of the measured per-frame signals
  (mouth openness, blink from the eye aspect ratio, yaw / pitch / roll); signals this pipeline does not
  measure (mouth roundness, smile, brow, gaze, shrug) are zero and listed in the index as ``unmeasured``;
- ``ref_latents`` / ``ref_motion`` / ``ref_mask``: the paired clip of the same person in another scene
  (``ref_mask`` False where that clip's frame had no face);
- index entries: ``identity`` (person id), ``scene``, ``ref_scene``, ``clip`` ("item:start-end"), ``tier``,
  ``transcript`` when the speech stage ran, ``vae`` (the VAE's source).

Without ``vae_dir`` the VAE is the preset's architecture with seeded random weights, as ``avatarv train
make-shards`` does for smoke runs; the index says so (``vae: random-init``): those latents are for plumbing
tests, not for training a real model.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video

UNMEASURED = ("mouth_round", "smile", "brow_raise", "gaze_x", "gaze_y", "shrug")


def square_crop(frames: np.ndarray, box, size: int) -> np.ndarray:
    """Square crop around the face box (2.2x its height, clamped to the frame), resized to ``size``."""
    import cv2

    h, w = frames.shape[1:3]
    x0, y0, x1, y1 = box
    side = int(min(max((y1 - y0) * 2.2, 16), h, w))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)
    left = int(np.clip(cx - side / 2, 0, w - side))
    top = int(np.clip(cy - side / 2, 0, h - side))
    return np.stack([cv2.resize(f[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
                     for f in frames])


class Shards(Stage):
    name = "shards"
    inputs = ("normalise", "faces", "clips", "tiers", "identity_graph")
    scope = "collection"
    resources = Resources(cpu=1.0, memory_mb=4096)

    @dataclass(frozen=True)
    class Config:
        preset: str = "tiny"
        resolution: int = 64
        latents: int = 5  # latent frames per target clip (17 frames)
        ref_latents: int = 3
        vae_dir: str = ""
        items_per_shard: int = 32
        min_tier: str = "C"  # "A": only tier-A clips, "B": A and B, "C": all clips

    def process(self, items: list[Item]) -> Output:
        import torch

        from avatarv.config.presets import get_preset
        from avatarv.data.shards import motion_features, write_shard
        from avatarv.models.encoders.audio_features import LogMelFeatures
        from avatarv.models.vae import VideoVAE

        c = self.config
        cfg = get_preset(c.preset)
        torch.manual_seed(0)
        vae = VideoVAE.from_pretrained(c.vae_dir) if c.vae_dir else VideoVAE(cfg.vae)
        feats = LogMelFeatures(n_mels=cfg.dit.audio_dim, fps=cfg.fps) if cfg.dit.audio_dim else None
        by_id = {it.item_id: it for it in items}
        graph = items[0].upstream["identity_graph"].values if items else {"clips": [], "cross_scene_pairs": []}
        nodes = graph["clips"]
        tiers = {}
        for it in items:
            for s in it.upstream["tiers"].values.get("clips", []):
                tiers[(it.item_id, tuple(s["clip"]))] = s["tier"]
        n_frames = (c.latents - 1) * 4 + 1
        videos: dict[str, object] = {}
        cache: dict[tuple, dict] = {}

        def encode(k: int, latents: int) -> dict | None:
            node = nodes[k]
            key = (k, latents)
            if key in cache:
                return cache[key]
            it = by_id[node["item"]]
            a, b = node["clip"]
            need = (latents - 1) * 4 + 1
            if b - a < need:
                return None
            if it.item_id not in videos:
                videos[it.item_id] = load_video(it, require_audio=True)
            video = videos[it.item_id]
            faces = it.upstream["faces"]
            boxes = faces.array("box")[a : a + need]
            box = np.nanmedian(boxes, axis=0)
            frames = square_crop(video.frames[a : a + need], box, c.resolution)
            out = {"latents": vae.encode(frames)[0].float()}
            if feats is not None:
                audio = video.audio[int(a / video.fps * video.sample_rate) :]
                out["audio"] = feats.latent_tokens(audio, 0, latents)
            ear = faces.array("ear")[a : a + need]
            pose = faces.array("pose")[a : a + need]
            sig = {"mouth_open": np.nan_to_num(faces.array("mouth_open")[a : a + need]),
                   "blink": (np.nan_to_num(ear, nan=1.0) < 0.2).astype(np.float32),
                   "yaw": np.nan_to_num(pose[:, 0]), "pitch": np.nan_to_num(pose[:, 1]), "roll": np.nan_to_num(pose[:, 2])}
            sig.update({u: np.zeros(need, np.float32) for u in UNMEASURED})
            if cfg.dit.motion_dim:
                out["motion"] = motion_features(sig, latents, cfg.dit.motion_dim)
            n_faces = faces.array("n_faces")[a : a + need]
            out["face_latent"] = torch.tensor([bool(n_faces[min(4 * j, need - 1)] > 0) for j in range(latents)])
            cache[key] = out
            return out

        rank = {"A": 0, "B": 1, "C": 2}
        pairs = [(p["a"], p["b"]) for p in graph["cross_scene_pairs"]] + [(p["b"], p["a"]) for p in graph["cross_scene_pairs"]]
        buf, meta = [], []
        with tempfile.TemporaryDirectory() as d:
            shard_no = 0
            for ta, rb in sorted(pairs):
                tnode, rnode = nodes[ta], nodes[rb]
                tier = tiers.get((tnode["item"], tuple(tnode["clip"])), "C")
                if rank[tier] > rank[c.min_tier]:
                    continue
                tgt, ref = encode(ta, c.latents), encode(rb, c.ref_latents)
                if tgt is None or ref is None:
                    continue
                item = {k: v for k, v in tgt.items() if k != "face_latent"}
                item["ref_latents"] = ref["latents"]
                if "motion" in ref:
                    item["ref_motion"] = ref["motion"]
                item["ref_mask"] = ref["face_latent"]
                buf.append(item)
                meta.append({"identity": tnode["person_id"], "scene": tnode["scene_id"], "ref_scene": rnode["scene_id"],
                             "clip": f"{tnode['item']}:{tnode['clip'][0]}-{tnode['clip'][1]}",
                             "ref_clip": f"{rnode['item']}:{rnode['clip'][0]}-{rnode['clip'][1]}", "tier": tier,
                             "vae": c.vae_dir or "random-init", "unmeasured": list(UNMEASURED)})
                if len(buf) == c.items_per_shard:
                    write_shard(d, f"shard-{shard_no:05d}", buf, meta)
                    buf, meta, shard_no = [], [], shard_no + 1
            if buf:
                write_shard(d, f"shard-{shard_no:05d}", buf, meta)
            files = {p.name: p.read_bytes() for p in sorted(Path(d).iterdir()) if not p.name.startswith(".")}
        n_items = len(json.loads(files["index.json"])["items"]) if "index.json" in files else 0
        return Output(values={"items": n_items, "shards": sorted(f for f in files if f.endswith(".safetensors")),
                              "n_frames_per_item": n_frames, "preset": c.preset}, files=files)
