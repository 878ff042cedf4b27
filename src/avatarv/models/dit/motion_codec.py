"""The motion stream as one component: per-frame signals ↔ the DiT's motion tokens.

The DiT predicts motion jointly with the video, one token ``[motion_dim]`` per latent frame. ``MotionCodec``
holds everything between the per-frame signals of a face (head pose, mouth, blink, smile, ...) and those
tokens: the signal layout of a token, the per-channel statistics of the stream, and the carry of a chunk's
motion into the next chunk's known frames.

Layout (``motion_features``): per latent frame j (video frames 4j−3 … 4j; latent 0 is frame 0 alone), the
mean of each signal of ``MOTION_SIGNALS`` over those frames (angles in degrees / 30), then the 4 per-frame
mouth openings (lip-sync detail), zero-padded or cut to ``motion_dim``. A reference's tokens hold only the
signals a pixel reader gives (``REFERENCE_SIGNALS``), the rest zero.

Statistics: the flow (``diffusion/flow.py``) mixes its variable with unit Gaussian noise, x_t = (1 − t)·x0 +
t·ε. VAE latents are normalised to unit variance for that reason (SD3 §5.1; Wan's latents_mean/std). Raw
motion features have std 0.02–0.35 on the world shards, so at a typical t ≈ 0.5 their signal is a fifth of the
noise or less: the model learns little beyond the mean, and a sampler fixes the motion only in its last step
or two — blinks and mouth motion average away. Normalising each channel with statistics of the training data,
(x − mean) / std, gives motion the SNR schedule the video has. (Measured: 250 continued stage-3 steps with it
did not make the bundled models blink; ``benchmarks/results/thesis-world-small-motion-norm.md``.) The
statistics live in the DiT's config (``DiTConfig.motion_mean/std``; empty = identity, the checkpoints trained
before them), so they travel with every checkpoint; the training side computes them over a dataset
(``avatarv.training.motion_stats``).

Spaces: *signals* ``{name: [T]}`` per video frame; raw *features* ``[F, motion_dim]`` per latent frame (what
the shards store, what generation hands out); *tokens*, the normalised features the DiT reads and predicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from avatarv.config import DiTConfig

# per-frame world/analyzer signals that make up the motion features, in order
MOTION_SIGNALS = ("mouth_open", "mouth_round", "smile", "blink", "brow_raise", "gaze_x", "gaze_y",
                  "yaw", "pitch", "roll", "shrug")

# the signals a pixel reader gives for a reference video: those of the world analyzer (analyzer/model.SIGNALS)
# that it reads well on the pipeline's reference crops (r 0.69–0.99 per latent frame against the labels; gaze,
# r ≈ 0, is left out; tests/unit/test_reference_motion.py). A reference's motion tokens carry these, the rest
# zero, in training as at inference
REFERENCE_SIGNALS = ("mouth_open", "smile", "blink", "yaw", "pitch", "roll")

ANGLE_SIGNALS = ("yaw", "pitch", "roll")  # degrees per frame, / 30 in a token
MOUTH_SLOTS = 4  # the per-frame mouth openings after the signal means

MIN_STD = 1e-3  # a channel that never varies (the zero-padded slots) keeps scale 1


def latents_for_frames(num_frames: int) -> int:
    """Latent frames that hold ``num_frames`` video frames (frame i lies in latent ⌈i / 4⌉)."""
    return (num_frames + 2) // 4 + 1


def frames_for_latents(num_latents: int) -> int:
    """Video frames of ``num_latents`` latent frames: 4(F − 1) + 1."""
    return 4 * (num_latents - 1) + 1


def motion_features(signals: dict[str, np.ndarray], num_latents: int, dim: int) -> torch.Tensor:
    """Per-frame signals ``{name: [T]}`` → ``[num_latents, dim]``: the mean of each signal over the latent
    frame's video frames (4j−3 … 4j), then the 4 per-frame mouth openings (lip-sync detail), zero-padded or cut
    to ``dim``. Angles are in degrees / 30."""
    t = len(signals["mouth_open"])
    rows = []
    for j in range(num_latents):
        idx = [min(max(4 * j - 3 + k, 0), t - 1) for k in range(MOUTH_SLOTS)]
        means = [float(np.mean(signals[n][idx])) * (1 / 30 if n in ANGLE_SIGNALS else 1)
                 for n in MOTION_SIGNALS]
        rows.append(means + [float(signals["mouth_open"][i]) for i in idx])
    feats = torch.tensor(rows, dtype=torch.float32)
    if feats.shape[1] >= dim:
        return feats[:, :dim]
    return torch.nn.functional.pad(feats, (0, dim - feats.shape[1]))


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
    if not 1 <= num_frames <= frames_for_latents(latents):
        raise ValueError(f"{num_frames} frames do not fit {latents} latent frames (at most {frames_for_latents(latents)})")
    frames = np.arange(num_frames)
    j = (frames + 3) // 4  # latent frame of each video frame
    out = {name: f[j, k] * (30.0 if name in ANGLE_SIGNALS else 1.0)
           for k, name in enumerate(motion_signal_names(dim))}
    s = len(MOTION_SIGNALS)
    if dim >= s + MOUTH_SLOTS:
        slot = np.where(frames == 0, 3, frames - (4 * j - 3))  # frame 0: latent 0 repeats it in every slot
        out["mouth_open"] = f[j, s + slot]
    return out


def motion_statistics(rows: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of raw motion rows ``[N, motion_dim]``; a constant channel gets std 1."""
    rows = rows.double()
    mean = rows.mean(0)
    std = rows.std(0, unbiased=False)
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


@dataclass(frozen=True)
class MotionCodec:
    """Per-frame signals ↔ the motion tokens of a ``dim``-wide stream with statistics (``mean``, ``std``);
    empty statistics = the identity (a DiT trained without them). Build it from the DiT's config
    (``from_config``); ``to_config`` writes the statistics back where checkpoints keep them."""

    dim: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self):
        if (self.mean or self.std) and not len(self.mean) == len(self.std) == self.dim:
            raise ValueError(f"motion statistics need {self.dim} values each, got {len(self.mean)} and {len(self.std)}")

    @classmethod
    def from_config(cls, cfg: DiTConfig) -> MotionCodec:
        return cls(cfg.motion_dim, tuple(cfg.motion_mean), tuple(cfg.motion_std))

    def to_config(self, cfg: DiTConfig) -> DiTConfig:
        """``cfg`` with this codec's statistics (``DiTConfig.motion_mean/std``: saved with the checkpoint)."""
        return replace(cfg, motion_mean=self.mean, motion_std=self.std)

    def with_statistics(self, mean, std) -> MotionCodec:
        return replace(self, mean=tuple(mean), std=tuple(std))

    @property
    def statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.mean, self.std

    @property
    def names(self) -> list[str]:
        """The per-frame signals the stream holds, in order (``decode``'s keys)."""
        return motion_signal_names(self.dim)

    # ---------------------------------------------------------------- raw features ↔ tokens
    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features ``[..., dim]`` → tokens ``(x − mean) / std`` (the input itself without statistics)."""
        if not self.std:
            return features
        return (features - features.new_tensor(self.mean)) / features.new_tensor(self.std)

    def denormalize(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[..., dim]`` → raw features (inverse of ``normalize``)."""
        if not self.std:
            return tokens
        return tokens * tokens.new_tensor(self.std) + tokens.new_tensor(self.mean)

    # ---------------------------------------------------------------- signals ↔ raw features
    def features(self, signals: dict[str, np.ndarray], num_latents: int | None = None) -> torch.Tensor:
        """Per-frame signals → raw features ``[num_latents, dim]`` (``motion_features``; by default the
        latent frames that hold the signals' frames)."""
        n = latents_for_frames(len(signals["mouth_open"])) if num_latents is None else num_latents
        return motion_features(signals, n, self.dim)

    def reference_features(self, signals: dict[str, np.ndarray], num_latents: int | None = None) -> torch.Tensor:
        """A reference's raw features: ``REFERENCE_SIGNALS`` kept, the others zero."""
        n = latents_for_frames(len(signals["mouth_open"])) if num_latents is None else num_latents
        return reference_motion_features(signals, n, self.dim)

    def signals(self, features: torch.Tensor | np.ndarray, num_frames: int | None = None) -> dict[str, np.ndarray]:
        """Raw features ``[F, dim]`` → per-frame signals (``motion_signals``; by default all 4(F − 1) + 1)."""
        return motion_signals(features, frames_for_latents(len(features)) if num_frames is None else num_frames)

    # ---------------------------------------------------------------- signals ↔ tokens
    def encode(self, signals: dict[str, np.ndarray], num_latents: int | None = None) -> torch.Tensor:
        """Per-frame signals → tokens ``[F_latent, dim]``, the stream's normalised space."""
        return self.normalize(self.features(signals, num_latents))

    def encode_reference(self, signals: dict[str, np.ndarray], num_latents: int | None = None) -> torch.Tensor:
        """A reference's per-frame signals → its tokens (``reference_features``, normalised)."""
        return self.normalize(self.reference_features(signals, num_latents))

    def decode(self, tokens: torch.Tensor, num_frames: int | None = None) -> dict[str, np.ndarray]:
        """Tokens ``[F_latent, dim]`` → raw per-frame signals ``{name: [num_frames]}``."""
        return self.signals(self.denormalize(tokens), num_frames)

    # ---------------------------------------------------------------- chunk to chunk
    def carry(self, previous: torch.Tensor, known_latents: int) -> torch.Tensor:
        """The next chunk's known motion: raw features ``[k, dim]`` from the previous chunk's ``[c, dim]``.

        The next chunk's k known latent frames are the VAE encoding of the previous chunk's last 4(k − 1) + 1
        frames: its latent 0 is the first of those frames alone, latent j ≥ 1 frames 4j − 3 … 4j of them. Their
        features are computed from the previous chunk's per-frame signals exactly as ``features`` computes a
        clip's; signals a small ``dim`` lacks count as zeros (they are cut again)."""
        c, dim = previous.shape
        if dim != self.dim:
            raise ValueError(f"motion features of width {dim} for a {self.dim}-wide stream")
        if not 1 <= known_latents <= c:
            raise ValueError(f"{known_latents} known latent frames from a chunk of {c}")
        frames = frames_for_latents(c)
        tail = frames_for_latents(known_latents)
        signals = motion_signals(previous, frames)
        zeros = np.zeros(frames)
        tail_signals = {n: signals.get(n, zeros)[frames - tail :] for n in MOTION_SIGNALS}
        return motion_features(tail_signals, known_latents, dim).to(previous.dtype)


__all__ = [
    "MotionCodec", "MOTION_SIGNALS", "REFERENCE_SIGNALS", "MIN_STD", "motion_features", "reference_motion_features",
    "motion_signal_names", "motion_signals", "motion_statistics", "latents_for_frames", "frames_for_latents",
]
