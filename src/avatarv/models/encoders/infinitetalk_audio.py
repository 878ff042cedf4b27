"""InfiniteTalk's wav2vec2 audio front end (chinese-wav2vec2-base), reproduced on transformers' ``Wav2Vec2Model``.

Follows ``MeiGen-AI/InfiniteTalk``:

- ``generate_infinitetalk.py`` ``audio_prepare_single`` / ``loudness_norm``: 16 kHz mono (``librosa.load(sr=16000)``),
  integrated loudness (ITU-R BS.1770, pyloudnorm) normalised to −23 LUFS, unchanged when |loudness| > 100
  (silence gives −inf). pyloudnorm needs at least one 0.4 s gating block; shorter clips are left unchanged here
  (InfiniteTalk would raise).
- ``generate_infinitetalk.py`` ``get_embedding``: the folder's ``Wav2Vec2FeatureExtractor`` (zero mean, unit
  variance), ``seq_len = int(len / 16000 · 25)`` video frames, then ``torch.stack(hidden_states[1:], 1)`` →
  ``[frames, layers, hidden]`` (``[frames, 12, 768]`` for the base model).
- ``src/audio_analysis/wav2vec2.py`` ``Wav2Vec2Model.forward``: the CNN features (50 Hz) are linearly
  interpolated to ``seq_len`` *before* the feature projection and the transformer (``torch_utils.py``
  ``linear_interpolation``: ``F.interpolate(mode='linear', align_corners=True)``). InfiniteTalk subclasses the
  model and copies its forward; here a forward hook on ``model.feature_extractor`` resamples its output for the
  duration of one call, and transformers' own forward does the rest (feature projection, encoder, hidden states).
- ``wan/multitalk.py`` ``generate_infinitetalk``: per video frame a window of the frames −2 … +2 around it,
  indices clamped to the track (``indices = (torch.arange(2 * 2 + 1) - 2) * 1``, ``torch.clamp``).
- ``generate_infinitetalk.py`` ``audio_prepare_multi``: two speakers either in parallel (``"para"``) or one after
  the other (``"add"``: speaker 1 then silence as long as speaker 2; silence as long as speaker 1 then speaker 2);
  a missing speaker is silence as long as the other. The mix written out for the video is their sum.

The whole track is encoded in one pass, as InfiniteTalk does (attention over all its frames); the segment-wise
encoder for long tracks is ``encoders/wav2vec.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avatarv.errors import CheckpointError, InputError
from avatarv.models.encoders.wav2vec import SAMPLE_RATE

FPS = 25  # InfiniteTalk assumes 25 fps video
TARGET_LUFS = -23.0
WINDOW = 5  # frames −2 … +2 around each video frame


def loudness_normalise(audio: np.ndarray, sr: int = SAMPLE_RATE, lufs: float = TARGET_LUFS) -> np.ndarray:
    """InfiniteTalk's ``loudness_norm``: integrated loudness → ``lufs``; silence / under 0.4 s unchanged."""
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float64)
    meter = pyloudnorm.Meter(sr)  # BS.1770, 0.4 s gating blocks
    if len(audio) < meter.block_size * sr:  # integrated_loudness raises below one block
        return audio
    loudness = meter.integrated_loudness(audio)
    if not np.isfinite(loudness) or abs(loudness) > 100:
        return audio
    return pyloudnorm.normalize.loudness(audio, loudness, lufs)


def to_mono_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """``[n]`` or ``[n, channels]`` at ``sr`` → ``[n']`` mono at 16 kHz (``librosa.load(sr=16000)``: channel mean,
    then librosa's default soxr_hq resampling)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise InputError(f"audio must be [samples] or [samples, channels], got shape {audio.shape}")
    if sr != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
    return audio


def combine_speakers(speech1: np.ndarray | None, speech2: np.ndarray | None,
                     audio_type: str = "para") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """InfiniteTalk's ``audio_prepare_multi`` on prepared tracks → (speaker 1, speaker 2, their sum).

    ``"para"``: both over the same time (InfiniteTalk needs equal lengths; the shorter is padded with silence
    here); ``"add"``: speaker 1 first, then speaker 2."""
    if speech1 is None and speech2 is None:
        raise InputError("combine_speakers: no audio for either speaker")
    speech2 = np.zeros(len(speech1)) if speech2 is None else np.asarray(speech2, dtype=np.float64)
    speech1 = np.zeros(len(speech2)) if speech1 is None else np.asarray(speech1, dtype=np.float64)
    if audio_type == "para":
        n = max(len(speech1), len(speech2))
        first, second = np.pad(speech1, (0, n - len(speech1))), np.pad(speech2, (0, n - len(speech2)))
    elif audio_type == "add":
        first = np.concatenate([speech1, np.zeros(len(speech2))])
        second = np.concatenate([np.zeros(len(speech1)), speech2])
    else:
        raise InputError(f"audio_type must be 'para' or 'add', got {audio_type!r}")
    return first, second, first + second


def audio_windows(emb: torch.Tensor, frame_indices: torch.Tensor | Sequence[int], window: int = WINDOW) -> torch.Tensor:
    """``emb`` ``[T, layers, D]`` → ``[F, window, layers, D]``: for each frame f the rows f − window//2 …
    f + window//2, clamped to [0, T − 1] (``generate_infinitetalk``'s ``center_indices``)."""
    frames = torch.as_tensor(frame_indices, dtype=torch.long, device=emb.device)  # [F]
    offsets = torch.arange(window, device=emb.device) - window // 2  # [window]
    idx = (frames[:, None] + offsets[None]).clamp(0, emb.shape[0] - 1)  # [F, window]
    return emb[idx]


def wav2vec_width(folder: str | Path) -> int:
    """The hidden width of a local Wav2Vec2 folder, from its config.json without loading the model (the
    InfiniteTalk adapter's input is layers × width, which its shapes alone cannot split)."""
    import json

    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        raise CheckpointError("not a wav2vec2 folder (config.json missing)", folder)
    try:
        return int(json.loads(cfg.read_text())["hidden_size"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"unreadable wav2vec2 config ({err!r})", cfg) from None


class InfiniteTalkAudioEncoder:
    """``prepare`` → ``embed`` → ``windows``: the audio condition of InfiniteTalk."""

    sample_rate = SAMPLE_RATE

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

        path = Path(path)
        if not path.is_dir():
            raise CheckpointError("no such wav2vec2 folder", path)
        if not (path / "config.json").is_file():
            raise CheckpointError("not a wav2vec2 folder (config.json missing)", path)
        try:
            self.model = Wav2Vec2Model.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        except OSError as err:  # no weights file
            raise CheckpointError(f"cannot load the wav2vec2 weights: {err}", path) from None
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.feature_extractor = (Wav2Vec2FeatureExtractor.from_pretrained(str(path), local_files_only=True)
                                  if (path / "preprocessor_config.json").is_file() else Wav2Vec2FeatureExtractor())

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @staticmethod
    def prepare(audio: np.ndarray, sr: int) -> np.ndarray:
        """Any-rate ``[n]`` / ``[n, channels]`` audio → 16 kHz mono at −23 LUFS (float64, as pyloudnorm returns)."""
        return loudness_normalise(to_mono_16k(audio, sr), SAMPLE_RATE)

    @staticmethod
    def frames_of(audio16k: np.ndarray, fps: int = FPS) -> int:
        """InfiniteTalk's ``seq_len``: ``int(duration · fps)``."""
        return int(len(audio16k) / SAMPLE_RATE * fps)

    @torch.no_grad()
    def embed(self, audio16k: np.ndarray, num_frames: int | None = None, fps: int = FPS) -> torch.Tensor:
        """Prepared 16 kHz audio → ``[num_frames, layers, hidden]`` (default ``num_frames``: ``frames_of``)."""
        num_frames = self.frames_of(audio16k, fps) if num_frames is None else int(num_frames)
        if num_frames < 1:
            raise InputError(f"audio of {len(audio16k)} samples gives no video frame at {fps} fps")
        values = self.feature_extractor(audio16k, sampling_rate=SAMPLE_RATE).input_values  # normalised
        param = next(self.model.parameters())
        x = torch.as_tensor(np.asarray(values, dtype=np.float32)).reshape(1, -1).to(param.device, param.dtype)

        def to_video_rate(_module, _inputs, feats: torch.Tensor) -> torch.Tensor:  # [1, C, T_50Hz] → [1, C, F]
            return F.interpolate(feats, size=num_frames, mode="linear", align_corners=True)

        hook = self.model.feature_extractor.register_forward_hook(to_video_rate)
        try:
            out = self.model(x, output_hidden_states=True)
        finally:
            hook.remove()
        return torch.stack(out.hidden_states[1:], dim=2)[0]  # layers × [1, F, D] → [F, layers, D]

    @staticmethod
    def windows(emb: torch.Tensor, frame_indices: torch.Tensor | Sequence[int], window: int = WINDOW) -> torch.Tensor:
        """``[T, layers, D]`` → ``[F, window, layers, D]`` (see :func:`audio_windows`)."""
        return audio_windows(emb, frame_indices, window)
