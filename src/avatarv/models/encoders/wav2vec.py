"""Wav2Vec2 audio features per video frame / latent frame, from a local ``transformers`` checkpoint.

The audio front-end of the open anchors (MultiTalk, InfiniteTalk, Wan-S2V): ``Wav2Vec2Model`` hidden
states (50 Hz for the standard 320× conv stride) linearly resampled to the video frame rate, then grouped 4
per latent frame like the log-mel default (``LogMelFeatures``), so the DiT's audio windows read either.

Long tracks are encoded in fixed segments with context on both sides (self-attention over a 10-minute track
would need tens of GB); the segment grid is integer sample arithmetic, so the features of a frame do not
depend on which chunk asks for them and nothing drifts over minutes. Weights load from a local folder only
(``local_files_only``): nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avatarv.errors import CheckpointError
from avatarv.models.encoders.audio_features import SpeechTokens

SAMPLE_RATE = 16000


class Wav2Vec2Features:
    """``frame_features`` / ``latent_tokens`` with the interface of ``LogMelFeatures``.

    ``layer``: which hidden state (−1 = last; ``"mean"`` = the mean over all layers, as some talking-head
    models use). ``segment_s`` / ``context_s``: the encoding grid for long audio.
    """

    sample_rate = SAMPLE_RATE  # the speech rate it reads (the pipeline pads and cuts tracks at it)

    def __init__(self, path: str | Path, fps: int = 25, layer: int | str = -1, segment_s: float = 20.0,
                 context_s: float = 1.0, device: str | torch.device = "cpu", tokens_per_latent: int = 4):
        from transformers import Wav2Vec2Model

        path = Path(path)
        if not (path / "config.json").is_file():
            raise CheckpointError("not a Wav2Vec2 folder (config.json missing)", path)
        self.model = Wav2Vec2Model.from_pretrained(path, local_files_only=True).to(device).eval()
        self.fps, self.layer, self.tokens_per_latent = fps, layer, tokens_per_latent
        stride = self.stride()  # segments start on the conv stride grid
        self.segment = max(1, round(segment_s * SAMPLE_RATE / stride)) * stride
        self.context = round(context_s * SAMPLE_RATE / stride) * stride
        self.normalize = _do_normalize(path)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    # ------------------------------------------------------------------ maths
    @torch.no_grad()
    def _hidden(self, audio: np.ndarray) -> np.ndarray:
        """Hidden states of one segment: ``[T_feat, dim]`` at the model's native rate."""
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(self.model.device)
        out = self.model(x, output_hidden_states=self.layer != -1)
        if self.layer == "mean":
            h = torch.stack(out.hidden_states).mean(0)
        elif self.layer == -1:
            h = out.last_hidden_state
        else:
            h = out.hidden_states[int(self.layer)]
        return h[0].float().cpu().numpy()

    def stride(self) -> int:
        return int(np.prod(self.model.config.conv_stride))  # samples per feature frame (320 → 50 Hz)

    def track_features(self, audio: np.ndarray) -> np.ndarray:
        """Features of the whole track at the video rate: ``[ceil(len·fps/sr), dim]``."""
        stride = self.stride()
        audio = np.asarray(audio, dtype=np.float32)
        if self.normalize and len(audio):  # the feature extractor's zero-mean unit-variance, over the track
            audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        n = len(audio)
        feats = []  # native-rate features, segment by segment
        for start in range(0, max(n, 1), self.segment):
            end = min(start + self.segment, n)
            lo, hi = max(0, start - self.context), min(n, end + self.context)
            seg = np.zeros(max(hi - lo, stride * 2), dtype=np.float32)
            seg[: hi - lo] = audio[lo:hi]
            h = self._hidden(seg)
            first = (start - lo) // stride
            count = -(-(end - start) // stride)
            feats.append(h[first : first + count])
        native = np.concatenate(feats)[: -(-n // stride)] if n else np.zeros((0, self.dim), np.float32)
        video = resample_to_frames(native, native_rate=SAMPLE_RATE / stride, fps=self.fps,
                                   num_frames=-(-n * self.fps // SAMPLE_RATE))
        return video

    def frame_features(self, audio: np.ndarray, num_frames: int, first_frame: int = 0) -> np.ndarray:
        """Features of video frames first_frame … first_frame + num_frames − 1: ``[num_frames, dim]``;
        frames outside the audio get the features of silence (zeros here, like the padding the model sees).
        Encodes the whole track: a job asks :meth:`prepare` once and slices it per chunk."""
        return _slice(self.track_features(audio), num_frames, first_frame)

    def prepare(self, audio: np.ndarray) -> SpeechTokens:
        """The track encoded once for a job; every chunk's tokens are slices of it."""
        track = self.track_features(audio)
        return SpeechTokens(lambda first, n: _slice(track, n, first), self.dim, self.tokens_per_latent)

    def latent_tokens(self, audio: np.ndarray, start_frame: int, num_latents: int) -> torch.Tensor:
        """``[num_latents, 4, dim]``; latent j covers video frames start_frame + 4j − 3 … start_frame + 4j."""
        return self.prepare(audio).latent_tokens(start_frame, num_latents)


def _slice(track: np.ndarray, num_frames: int, first_frame: int) -> np.ndarray:
    """Rows first_frame … first_frame + num_frames − 1 of ``track`` ``[T, dim]``, zeros outside it."""
    out = np.zeros((num_frames, track.shape[1]), dtype=np.float32)
    lo, hi = max(first_frame, 0), min(first_frame + num_frames, len(track))
    if hi > lo:
        out[lo - first_frame : hi - first_frame] = track[lo:hi]
    return out


def _do_normalize(path: Path) -> bool:
    """``do_normalize`` of the folder's ``preprocessor_config.json`` (the usual True when absent)."""
    import json

    cfg = path / "preprocessor_config.json"
    return bool(json.loads(cfg.read_text()).get("do_normalize", True)) if cfg.is_file() else True


def resample_to_frames(native: np.ndarray, native_rate: float, fps: int, num_frames: int) -> np.ndarray:
    """Linear interpolation of ``[T, D]`` features at ``native_rate`` Hz to ``num_frames`` video frames, each
    sampled at its centre time (i + ½)/fps (MultiTalk resamples wav2vec's 50 Hz to 25 fps linearly)."""
    if len(native) == 0:
        return np.zeros((num_frames, native.shape[1] if native.ndim == 2 else 0), dtype=np.float32)
    t = (np.arange(num_frames) + 0.5) / fps * native_rate - 0.5  # in native-frame units (centres at k + ½)
    t = np.clip(t, 0, len(native) - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(native) - 1)
    w = (t - i0)[:, None].astype(np.float32)
    return ((1 - w) * native[i0] + w * native[i1]).astype(np.float32)


def make_audio_features(audio_dim: int, fps: int, wav2vec_path: str | Path | None = None):
    """The audio front-end of a model: Wav2Vec2 from a local folder when given, else the log-mel default.
    The DiT's ``audio_dim`` must equal the front-end's feature size."""
    from avatarv.errors import ConfigError
    from avatarv.models.encoders.audio_features import LogMelFeatures

    if wav2vec_path is None:
        return LogMelFeatures(n_mels=audio_dim, fps=fps)
    feats = Wav2Vec2Features(wav2vec_path, fps=fps)
    if feats.dim != audio_dim:
        raise ConfigError(f"the DiT's audio_dim is {audio_dim} but the Wav2Vec2 at {wav2vec_path} gives "
                          f"{feats.dim}-d features")
    return feats
