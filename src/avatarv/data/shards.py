"""Training shards: the format the data engine's latent pre-encoding writes and the trainer reads.

A shard directory holds ``shard-NNNNN.safetensors`` files and one ``index.json``. Item ``i`` of a shard
stores its tensors under ``"{i}/{field}"`` (fields of ``avatarv.training.batch.Batch``):

- ``latents`` ``[z, F, h, w]`` float — VAE latents of the target clip (normalised, 4k+1 frames → F = k+1);
- ``audio`` ``[F, 4, n_mels]`` — audio tokens per latent frame (``LogMelFeatures.latent_tokens``);
- ``motion`` ``[F, motion_dim]`` — motion features per latent frame (``motion_features``);
- ``text`` ``[L, text_dim]`` — text-encoder outputs (optional);
- ``ref_latents`` ``[z, F_ref, h, w]``, ``ref_motion`` ``[F_ref, motion_dim]``, ``ref_mask`` ``[F_ref]`` bool —
  the reference clip: the same identity in another scene (a cross-scene pair of the identity graph).

``index.json``: ``{"format": "avatarv-shards-v1", "items": [{"shard": name, "index": i, "identity": id,
"scene": id, "ref_scene": id, "clip": str}, ...]}``. Shards are written to a temp name and renamed, then the
index is replaced atomically, so readers never see half a shard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from avatarv.errors import InputError

FORMAT = "avatarv-shards-v1"

# per-frame world/analyzer signals that make up the motion features, in order
MOTION_SIGNALS = ("mouth_open", "mouth_round", "smile", "blink", "brow_raise", "gaze_x", "gaze_y",
                  "yaw", "pitch", "roll", "shrug")


def motion_features(signals: dict[str, np.ndarray], num_latents: int, dim: int) -> torch.Tensor:
    """Per-frame signals ``{name: [T]}`` → ``[num_latents, dim]``: the mean of each signal over the latent
    frame's video frames (4j−3 … 4j), then the 4 per-frame mouth openings (lip-sync detail), zero-padded or cut
    to ``dim``. Angles are in degrees / 30."""
    t = len(signals["mouth_open"])
    rows = []
    for j in range(num_latents):
        idx = [min(max(4 * j - 3 + k, 0), t - 1) for k in range(4)]
        means = [float(np.mean(signals[n][idx])) * (1 / 30 if n in ("yaw", "pitch", "roll") else 1)
                 for n in MOTION_SIGNALS]
        rows.append(means + [float(signals["mouth_open"][i]) for i in idx])
    feats = torch.tensor(rows, dtype=torch.float32)
    if feats.shape[1] >= dim:
        return feats[:, :dim]
    return torch.nn.functional.pad(feats, (0, dim - feats.shape[1]))


# the signals a pixel reader gives for a reference video: those of the world analyzer (world/analyzer/model.
# SIGNALS) that it reads well on the pipeline's reference crops (r 0.69–0.99 per latent frame against the
# labels; gaze, r ≈ 0, is left out; tests/unit/test_reference_motion.py). A reference's motion tokens carry
# these, the rest zero, in training as at inference
REFERENCE_SIGNALS = ("mouth_open", "smile", "blink", "yaw", "pitch", "roll")


def reference_motion_features(signals: dict[str, np.ndarray], num_latents: int, dim: int) -> torch.Tensor:
    """``motion_features`` of a reference: the signals of ``REFERENCE_SIGNALS`` (exact labels in training, the
    analyzer's reading at inference), every other signal zero so that the two agree on what is known."""
    t = len(signals["mouth_open"])
    kept = {n: (np.asarray(signals[n], np.float64) if n in REFERENCE_SIGNALS else np.zeros(t)) for n in MOTION_SIGNALS}
    return motion_features(kept, num_latents, dim)


def motion_signal_names(dim: int) -> list[str]:
    """The per-frame signals a ``dim``-wide motion stream holds (``motion_signals``' keys, in order)."""
    return list(MOTION_SIGNALS[:dim])


def motion_signals(features: torch.Tensor | np.ndarray, num_frames: int) -> dict[str, np.ndarray]:
    """Inverse of ``motion_features``: ``[num_latents, dim]`` → per-frame signals ``{name: [num_frames]}``.

    Frame i lies in latent frame j = ⌈i / 4⌉ (frame 0 in latent 0, frames 4j − 3 … 4j in latent j). Each
    signal is its latent frame's mean, held over the frame's 4 frames (angles back in degrees); ``mouth_open``
    is exact per frame (the 4 per-frame openings). Signals cut off by a small ``dim`` are left out. A signal
    that is constant over each latent frame's frames comes back exactly."""
    f = np.asarray(features.detach().float().cpu() if isinstance(features, torch.Tensor) else features, np.float64)
    if f.ndim != 2:
        raise ValueError(f"motion features of shape {f.shape}: expected [latents, dim]")
    latents, dim = f.shape
    if not 1 <= num_frames <= 4 * (latents - 1) + 1:
        raise ValueError(f"{num_frames} frames do not fit {latents} latent frames (at most {4 * (latents - 1) + 1})")
    frames = np.arange(num_frames)
    j = (frames + 3) // 4  # latent frame of each video frame
    out = {name: f[j, k] * (30.0 if name in ("yaw", "pitch", "roll") else 1.0)
           for k, name in enumerate(motion_signal_names(dim))}
    s = len(MOTION_SIGNALS)
    if dim >= s + 4:
        slot = np.where(frames == 0, 3, frames - (4 * j - 3))  # frame 0: latent 0 repeats it in every slot
        out["mouth_open"] = f[j, s + slot]
    return out


def write_shard(directory: str | Path, name: str, items: list[dict], meta: list[dict]) -> None:
    """Write one shard (items: dicts of tensors) and add its items to the directory's index."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{i}/{k}": v.detach().clone().contiguous() for i, item in enumerate(items) for k, v in item.items() if v is not None}
    tmp = directory / f".{name}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / f"{name}.safetensors")
    index_path = directory / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {"format": FORMAT, "items": []}
    index["items"] = [it for it in index["items"] if it["shard"] != name]
    index["items"] += [{"shard": name, "index": i, **m} for i, m in enumerate(meta)]
    tmp_index = directory / ".index.json.tmp"
    tmp_index.write_text(json.dumps(index, indent=1))
    os.replace(tmp_index, index_path)


class ShardDataset:
    """Random access to the items of a shard directory (tensors read lazily, one item at a time)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index_path = self.directory / "index.json"
        if not index_path.is_file():
            raise InputError("not a shard directory (no index.json)", self.directory)
        index = json.loads(index_path.read_text())
        if index.get("format") != FORMAT:
            raise InputError(f"unknown shard format {index.get('format')!r} (expected {FORMAT})", index_path)
        self.items = index["items"]
        if not self.items:
            raise InputError("the shard index lists no items", index_path)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.read(i)

    def read(self, i: int, fields: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Item ``i``, only its ``fields`` when given (the others are not read from disk: statistics over
        the motion rows need not load every latent)."""
        entry = self.items[i]
        prefix = f"{entry['index']}/"
        wanted = None if fields is None else {prefix + name for name in fields}
        with safe_open(str(self.directory / f"{entry['shard']}.safetensors"), framework="pt") as f:
            return {k[len(prefix) :]: f.get_tensor(k) for k in f.keys()
                    if k.startswith(prefix) and (wanted is None or k in wanted)}


def read_fields(dataset, i: int, fields: Iterable[str]) -> dict[str, torch.Tensor]:
    """Item ``i`` of a dataset of training items, cut to ``fields`` (read selectively where it can be)."""
    if isinstance(dataset, ShardDataset):
        return dataset.read(i, fields)
    item = dataset[i]
    return {k: item[k] for k in fields if k in item}
