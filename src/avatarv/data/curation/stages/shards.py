"""Latent and text pre-encoding into training shards (seed: text embedding pre-encoding, latent pre-encoding
with multiple VAE architectures, cross-scene pairs organised by resolution, duration and balance).

Writes the trainer's format, ``avatarv.data.shards`` (``shard-NNNNN.safetensors`` + ``index.json``, format
``avatarv-shards-v1``; the tensors of item ``i`` under ``"{i}/{field}"``, fields of
``avatarv.training.batch.Batch``). One item per (target, reference) pair from ``pairs.sample_pairs`` over the
identity graph's cross-scene pairs: same person, other scene, same resolution and duration bucket, balanced
over the measured categories (``categories`` stage when upstream) and identities.

- ``latents`` ``[z, F, h, w]``: the first VAE's ``encode`` of the target clip's first ``4(latents-1)+1``
  frames, centre-cropped square around the face and resized to ``resolution``; every further VAE of
  ``vaes`` stores its own encoding of the same frames beside it as ``latents@<name>`` (and
  ``ref_latents@<name>``): ``ShardDataset(dir, vae=name)`` reads that one as ``latents``;
- ``text`` ``[L, text_dim]``: the text encoder's output (UMT5; the bundled trained one by default) for the
  clip's caption: the ``captions`` stage's when it ran, else a description made of the measured categories,
  else "a person talking"; the index keeps the text and where it came from;
- ``audio`` ``[F, 4, n_mels]``: ``LogMelFeatures.latent_tokens`` of the clip's sound (preset ``audio_dim``);
- ``motion`` ``[F, motion_dim]``: ``motion_features`` of the measured per-frame signals (mouth openness,
  blink from the eye aspect ratio, yaw / pitch / roll, gaze when the faces stage measured it); signals not
  measured are zero and listed in the index as ``unmeasured``;
- ``ref_latents`` / ``ref_motion`` (``reference_motion_features``, as in training) / ``ref_mask`` (False
  where the reference frame had no face);
- index entries: ``identity``, ``scene``, ``ref_scene``, ``clip`` / ``ref_clip`` ("item:start-end"),
  ``tier``, ``resolution`` / ``duration_s`` with their buckets, ``categories``, ``text``, ``text_source``,
  ``transcript`` (when the speech stage ran), ``vae`` (the primary VAE's name), ``vaes`` ({name: source,
  sha256 of the weights}), ``text_encoder`` (source and sha256).

Models: ``vaes`` entries are a checkpoint name on the search path (``avatarv.resources``: its ``vae/``), a
VAE folder (``config.json`` + safetensors) or a checkpoint folder, optionally named ``name=entry``; the
default is the bundled trained world VAE (``world-small``). Random weights only when asked for by name
(``random:<preset>``, seeded: plumbing tests). ``text_encoder``: a checkpoint name (its ``text_encoder/``)
or a UMT5/T5 folder; ``""`` leaves ``text`` out. A model that cannot be found makes the stage unavailable
(with the reason), never a silent random fallback.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarv.data.curation.pairs import ClipInfo, PairRules, buckets, sample_pairs
from avatarv.data.curation.stage import Artifact, Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video
from avatarv.errors import ConfigError

UNMEASURED = ("mouth_round", "smile", "brow_raise", "gaze_x", "gaze_y", "shrug")
CROP_SCALE = 2.2  # the square crop's side in face heights


def crop_side(box, h: int, w: int) -> int:
    """Side (px, before resizing) of the square crop around a face box: ``CROP_SCALE`` face heights, clamped."""
    return int(min(max((box[3] - box[1]) * CROP_SCALE, 16), h, w))


def square_crop(frames: np.ndarray, box, size: int) -> np.ndarray:
    """Square crop around the face box (``crop_side``, centred a little below the face), resized to ``size``."""
    import cv2

    h, w = frames.shape[1:3]
    x0, y0, x1, y1 = box
    side = crop_side(box, h, w)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)
    left = int(np.clip(cx - side / 2, 0, w - side))
    top = int(np.clip(cy - side / 2, 0, h - side))
    return np.stack([cv2.resize(f[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
                     for f in frames])


def _weights_sha(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def resolve_model(entry: str, sub: str) -> tuple[str, Path | None, str | None]:
    """A ``vaes`` / ``text_encoder`` entry -> (name, folder, random preset). ``sub``: the folder inside a
    checkpoint (``vae`` or ``text_encoder``). Raises ``CheckpointError`` when nothing is found."""
    from avatarv.errors import CheckpointError
    from avatarv.resources import find_checkpoint

    name, _, spec = entry.rpartition("=")
    if spec.startswith("random:"):
        preset = spec.split(":", 1)[1]
        return name or f"random-{preset}", None, preset
    p = Path(spec).expanduser()
    if (p / "config.json").is_file():
        return name or (p.parent.name if p.name == sub else p.name), p, None
    if (p / sub / "config.json").is_file():
        return name or p.name, p / sub, None
    if "/" in spec or spec.startswith("."):
        raise CheckpointError(f"no {sub} here (expected config.json, or {sub}/config.json)", p)
    folder = find_checkpoint(spec) / sub
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"checkpoint {spec!r} has no {sub}/", folder)
    return name or spec, folder, None


def _signal(art: Artifact, name: str, a: int, b: int) -> np.ndarray | None:
    return np.load(art.path / f"{name}.npy")[a:b] if (art.path / f"{name}.npy").is_file() else None


def clip_categories(art: Artifact | None, clip) -> dict[str, str]:
    """A clip's measured categories: per clip when the stage gives ``clips`` with categories, else the item's."""
    if art is None or not art.ok:
        return {}
    for rec in art.values.get("clips", []):
        if list(rec.get("clip", [])) == list(clip) and "categories" in rec:
            return {str(k): str(v) for k, v in rec["categories"].items()}
    return {str(k): str(v) for k, v in art.values.get("categories", {}).items()}


def caption_text(item: Item, clip, categories: dict[str, str]) -> tuple[str, str]:
    """(text, source) for a clip: the captioning VLM's caption, else the categories in words, else a default."""
    cap = item.upstream.get("captions")
    if cap is not None and cap.ok:
        for rec in cap.values.get("clips", []):
            if list(rec["clip"]) == list(clip) and rec.get("caption"):
                return str(rec["caption"]), "captions"
    if categories:
        return "a person talking; " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(categories.items())), \
            "categories"
    return "a person talking", "default"


def _transcript(item: Item, clip) -> str | None:
    sp = item.upstream.get("speech")
    if sp is not None and sp.ok:
        for rec in sp.values.get("clips", []):
            if list(rec["clip"]) == list(clip):
                return rec.get("transcript")
    return None


class Shards(Stage):
    name = "shards"
    version = "2"
    inputs = ("normalise", "faces", "clips", "tiers", "identity_graph")
    scope = "collection"
    resources = Resources(cpu=1.0, memory_mb=4096)

    @dataclass(frozen=True)
    class Config:
        preset: str = "small"  # the bundled world model's architecture (text_dim, audio_dim, motion_dim)
        resolution: int = 0  # 0: the preset's
        latents: int = 5  # latent frames per target clip (17 frames)
        ref_latents: int = 3
        vaes: tuple[str, ...] = ("world-small",)  # first: ``latents``; others: ``latents@<name>``
        text_encoder: str = "world-small"  # "": no ``text`` field
        text_max_length: int = 64
        items_per_shard: int = 32
        min_tier: str = "C"  # "A": only tier-A clips, "B": A and B, "C": all clips
        pairs: PairRules = PairRules()

    def __init__(self, name=None, inputs=None, **config):
        if isinstance(config.get("pairs"), dict):  # from TOML / a worker's spec
            config["pairs"] = PairRules(**{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in config["pairs"].items()})
        if isinstance(config.get("vaes"), list | str):
            config["vaes"] = (config["vaes"],) if isinstance(config["vaes"], str) else tuple(config["vaes"])
        super().__init__(name, inputs, **config)
        if not self.config.vaes:
            raise ConfigError("stage shards: vaes is empty (name at least one VAE)")

    OPTIONAL = ("speech", "captions", "categories")  # read when upstream: transcripts, captions, categories

    @classmethod
    def after(cls, stages: list[Stage], **config) -> Shards:
        """A shards stage that also reads the optional upstreams (``OPTIONAL``) present in ``stages``."""
        names = {s.name for s in stages}
        return cls(inputs=cls.inputs + tuple(n for n in cls.OPTIONAL if n in names), **config)

    def unavailable(self) -> str | None:
        from avatarv.errors import CheckpointError

        try:
            for entry in self.config.vaes:
                resolve_model(entry, "vae")
            if self.config.text_encoder:
                resolve_model(self.config.text_encoder, "text_encoder")
        except CheckpointError as err:
            return f"shards: {err}"
        return None

    # -- models -----------------------------------------------------------------------------------------------
    def _load_models(self, cfg):
        import torch

        from avatarv.models.encoders.text import TextEncoder
        from avatarv.models.vae import VideoVAE

        vaes, sources = {}, {}
        for entry in self.config.vaes:
            name, folder, preset = resolve_model(entry, "vae")
            if name in vaes:
                raise ConfigError(f"stage shards: two VAEs named {name!r} (name them: 'name=entry')")
            if preset is not None:
                from avatarv.config.presets import get_preset

                torch.manual_seed(0)
                vaes[name] = VideoVAE(get_preset(preset).vae)
                sources[name] = {"source": f"random:{preset}", "sha256": None}
            else:
                vaes[name] = VideoVAE.from_pretrained(folder)
                sources[name] = {"source": str(folder), "sha256": _weights_sha(folder)}
        first = next(iter(vaes.values()))
        if first.cfg.z_dim != cfg.dit.latent_channels:
            raise ConfigError(f"stage shards: VAE {next(iter(vaes))!r} has {first.cfg.z_dim} latent channels, "
                              f"preset {cfg.name!r} expects {cfg.dit.latent_channels}")
        text, text_source = None, None
        if self.config.text_encoder:
            _, folder, _ = resolve_model(self.config.text_encoder, "text_encoder")
            text = TextEncoder.from_pretrained(folder, max_length=self.config.text_max_length)
            if text.dim != cfg.dit.text_dim:
                raise ConfigError(f"stage shards: text encoder {folder} gives {text.dim}-d outputs, preset "
                                  f"{cfg.name!r} expects text_dim {cfg.dit.text_dim}")
            text_source = {"source": str(folder), "sha256": _weights_sha(folder)}
        return vaes, sources, text, text_source

    # -- work -------------------------------------------------------------------------------------------------
    def process(self, items: list[Item]) -> Output:
        import torch

        from avatarv.config.presets import get_preset
        from avatarv.data.shards import motion_features, reference_motion_features, write_shard
        from avatarv.models.encoders.audio_features import LogMelFeatures

        c = self.config
        cfg = get_preset(c.preset)
        size = c.resolution or cfg.resolution
        vaes, vae_sources, text_enc, text_source = self._load_models(cfg)
        primary = next(iter(vaes))
        feats = LogMelFeatures(n_mels=cfg.dit.audio_dim, fps=cfg.fps) if cfg.dit.audio_dim else None
        by_id = {it.item_id: it for it in items}
        graph = items[0].upstream["identity_graph"].values if items else {"clips": [], "cross_scene_pairs": []}
        nodes = graph["clips"]
        tiers = {}
        for it in items:
            for s in it.upstream["tiers"].values.get("clips", []):
                tiers[(it.item_id, tuple(s["clip"]))] = s["tier"]
        rank = {"A": 0, "B": 1, "C": 2}

        infos = []
        for node in nodes:
            it = by_id[node["item"]]
            a, b = node["clip"]
            norm = it.upstream["normalise"].values
            box = np.nanmedian(it.upstream["faces"].array("box")[a:b], axis=0)
            res = crop_side(box, norm["height"], norm["width"]) if np.isfinite(box).all() else 0
            infos.append(ClipInfo(person=int(node["person_id"]), scene=int(node["scene_id"]), resolution=res,
                                  frames=b - a, categories=clip_categories(it.upstream.get("categories"), node["clip"])))
        need, ref_need = (c.latents - 1) * 4 + 1, (c.ref_latents - 1) * 4 + 1
        usable = [k for k, node in enumerate(nodes)
                  if rank[tiers.get((node["item"], tuple(node["clip"])), "C")] <= rank[c.min_tier]
                  and infos[k].frames >= max(need, ref_need) and infos[k].resolution > 0]
        ok = set(usable)
        graph_pairs = [(p["a"], p["b"]) for p in graph["cross_scene_pairs"] if p["a"] in ok and p["b"] in ok]
        pairs = sample_pairs(infos, graph_pairs, c.pairs)

        videos: dict[str, object] = {}
        cache: dict[tuple, dict] = {}

        def encode(k: int, latents: int, reference: bool) -> dict:
            key = (k, latents, reference)
            if key in cache:
                return cache[key]
            node = nodes[k]
            it = by_id[node["item"]]
            a = node["clip"][0]
            n = (latents - 1) * 4 + 1
            if it.item_id not in videos:
                videos[it.item_id] = load_video(it, require_audio=True)
            video = videos[it.item_id]
            faces = it.upstream["faces"]
            box = np.nanmedian(faces.array("box")[a : a + n], axis=0)
            frames = square_crop(video.frames[a : a + n], box, size)
            out = {name: vae.encode(frames)[0].float() for name, vae in vaes.items()}  # [z, F, h, w] each
            if feats is not None and not reference:
                audio = video.audio[int(a / video.fps * video.sample_rate) :]
                out["audio"] = feats.latent_tokens(audio, 0, latents)
            sig, unmeasured = self._signals(faces, a, a + n)
            if cfg.dit.motion_dim:
                fn = reference_motion_features if reference else motion_features
                out["motion"] = fn(sig, latents, cfg.dit.motion_dim)
            n_faces = faces.array("n_faces")[a : a + n]
            out["face_latent"] = torch.tensor([bool(n_faces[min(4 * j, n - 1)] > 0) for j in range(latents)])
            out["unmeasured"] = unmeasured
            cache[key] = out
            return out

        texts: dict[int, tuple] = {}
        buf, meta = [], []
        with tempfile.TemporaryDirectory() as d:
            shard_no = 0
            for t, r in pairs:
                tnode, rnode = nodes[t], nodes[r]
                tgt, ref = encode(t, c.latents, False), encode(r, c.ref_latents, True)
                item = {"latents": tgt[primary], "ref_latents": ref[primary], "ref_mask": ref["face_latent"]}
                for name in vaes:
                    if name != primary:
                        item[f"latents@{name}"], item[f"ref_latents@{name}"] = tgt[name], ref[name]
                for f in ("audio", "motion"):
                    if f in tgt:
                        item[f] = tgt[f]
                if "motion" in ref:
                    item["ref_motion"] = ref["motion"]
                if t not in texts:
                    prompt, source = caption_text(by_id[tnode["item"]], tnode["clip"], infos[t].categories)
                    texts[t] = (prompt, source, None if text_enc is None else text_enc.encode([prompt])[0])
                prompt, source, emb = texts[t]
                if emb is not None:
                    item["text"] = emb  # [L, text_dim]
                res_b, dur_b = buckets(infos[t], c.pairs)
                entry = {"identity": tnode["person_id"], "scene": tnode["scene_id"], "ref_scene": rnode["scene_id"],
                         "clip": f"{tnode['item']}:{tnode['clip'][0]}-{tnode['clip'][1]}",
                         "ref_clip": f"{rnode['item']}:{rnode['clip'][0]}-{rnode['clip'][1]}",
                         "tier": tiers.get((tnode["item"], tuple(tnode["clip"])), "C"),
                         "resolution": infos[t].resolution, "resolution_bucket": res_b,
                         "duration_s": round(infos[t].frames / c.pairs.fps, 3), "duration_bucket": dur_b,
                         "categories": infos[t].categories, "text": prompt, "text_source": source,
                         "vae": primary, "vaes": vae_sources, "text_encoder": text_source,
                         "unmeasured": tgt["unmeasured"]}
                transcript = _transcript(by_id[tnode["item"]], tnode["clip"])
                if transcript is not None:
                    entry["transcript"] = transcript
                buf.append(item)
                meta.append(entry)
                if len(buf) == c.items_per_shard:
                    write_shard(d, f"shard-{shard_no:05d}", buf, meta)
                    buf, meta, shard_no = [], [], shard_no + 1
            if buf:
                write_shard(d, f"shard-{shard_no:05d}", buf, meta)
            files = {p.name: p.read_bytes() for p in sorted(Path(d).iterdir()) if not p.name.startswith(".")}
        n_items = len(json.loads(files["index.json"])["items"]) if "index.json" in files else 0
        return Output(values={"items": n_items, "shards": sorted(f for f in files if f.endswith(".safetensors")),
                              "n_frames_per_item": need, "preset": c.preset, "vaes": list(vaes),
                              "eligible_clips": len(usable), "graph_pairs": len(graph_pairs)}, files=files)

    @staticmethod
    def _signals(faces: Artifact, a: int, b: int) -> tuple[dict[str, np.ndarray], list[str]]:
        """Per-frame motion signals of frames [a, b) from the faces stage; unmeasured ones zero (and named)."""
        n = b - a
        ear = faces.array("ear")[a:b]
        pose = faces.array("pose")[a:b]
        sig = {"mouth_open": np.nan_to_num(faces.array("mouth_open")[a:b]),
               "blink": (np.nan_to_num(ear, nan=1.0) < 0.2).astype(np.float32),
               "yaw": np.nan_to_num(pose[:, 0]), "pitch": np.nan_to_num(pose[:, 1]), "roll": np.nan_to_num(pose[:, 2])}
        unmeasured = list(UNMEASURED)
        gaze = _signal(faces, "gaze", a, b)  # [n, 2] or [n, eyes, 2] (x, y)
        if gaze is not None and len(gaze) == n:
            g = gaze.reshape(n, -1, 2).astype(np.float64)
            seen = np.isfinite(g)
            mean = np.where(seen, g, 0.0).sum(1) / np.maximum(seen.sum(1), 1)  # [n, 2]: over the eyes seen
            sig["gaze_x"], sig["gaze_y"] = mean[:, 0], mean[:, 1]
            unmeasured = [u for u in unmeasured if u not in ("gaze_x", "gaze_y")]
        sig.update({u: np.zeros(n, np.float32) for u in unmeasured})
        return sig, unmeasured
