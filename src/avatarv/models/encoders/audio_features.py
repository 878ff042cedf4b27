"""Audio tokens per latent frame for the DiT's windowed audio cross-attention.

Default front-end: log-mel filterbank energies (16 kHz, 25 ms Hann window, 10 ms hop; HTK mel scale via
``transformers.audio_utils``). A video frame at 25 fps spans 640 samples = 4 hops; its token is the mean of
those 4 mel frames. Latent frame j covers video frames 4j − 3 … 4j (Wan's causal VAE: latent 0 is frame 0
alone), so every latent frame gets exactly 4 tokens; frames before the start are silence. Sample indices
come from integer arithmetic (frame i starts at i·sr/fps), so there is no drift over minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
WIN = 400  # 25 ms


@dataclass(frozen=True)
class SpeechTokens:
    """One speech track's audio tokens, prepared once per job: ``frames(first, n)`` gives the features of video
    frames first … first + n − 1 (``[n, dim]``), read from the track without recomputing or hashing it."""

    frames: Callable[[int, int], np.ndarray]
    dim: int
    tokens_per_latent: int = 4

    def latent_tokens(self, start_frame: int, num_latents: int) -> torch.Tensor:
        """``[num_latents, 4, dim]``; latent j covers video frames start_frame + 4j − 3 … start_frame + 4j
        (Wan's causal VAE: latent 0 is frame 0 alone, the frames before it are silence)."""
        k = self.tokens_per_latent
        feats = self.frames(start_frame - (k - 1), num_latents * k)
        return torch.from_numpy(np.ascontiguousarray(feats).reshape(num_latents, k, self.dim))


@dataclass(frozen=True)
class LogMelFeatures:
    n_mels: int
    fps: int = 25
    sample_rate: int = SAMPLE_RATE
    tokens_per_latent: int = 4  # = VAE temporal stride

    def frame_features(self, audio: np.ndarray, num_frames: int, first_frame: int = 0) -> np.ndarray:
        """Features of video frames first_frame … first_frame + num_frames − 1: ``[num_frames, n_mels]``.

        Frames outside the audio get the log-mel of silence.
        """
        from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

        sr, fps = self.sample_rate, self.fps
        if (sr * 1) % fps:
            raise ValueError(f"sample rate {sr} is not a multiple of fps {fps}")
        per_frame = sr // fps
        hops_per_frame = per_frame // HOP
        start = first_frame * per_frame
        length = num_frames * per_frame
        seg = np.zeros(length + WIN, dtype=np.float32)  # + WIN: the last hop's window is complete
        lo, hi = max(start, 0), min(start + length + WIN, len(audio))
        if hi > lo:
            seg[lo - start : hi - start] = audio[lo:hi]
        mel = mel_filter_bank(
            num_frequency_bins=1 + 512 // 2, num_mel_filters=self.n_mels, min_frequency=20.0,
            max_frequency=sr / 2, sampling_rate=sr, norm=None, mel_scale="htk",
        )
        spec = spectrogram(
            seg, window_function(WIN, "hann"), frame_length=WIN, hop_length=HOP, fft_length=512, power=2.0,
            center=False, mel_filters=mel, log_mel="log10", mel_floor=1e-10,
        )  # [n_mels, hops]
        spec = spec[:, : num_frames * hops_per_frame].T.reshape(num_frames, hops_per_frame, self.n_mels)
        return ((spec.mean(axis=1) + 5.0) / 5.0).astype(np.float32)  # ~[-1, 1] for speech levels

    def prepare(self, audio: np.ndarray) -> SpeechTokens:
        """The track's tokens for a job (log-mel is cheap and local: each chunk computes its own frames)."""
        return SpeechTokens(lambda first, n: self.frame_features(audio, n, first), self.n_mels, self.tokens_per_latent)

    def latent_tokens(self, audio: np.ndarray, start_frame: int, num_latents: int) -> torch.Tensor:
        """Tokens ``[num_latents, 4, n_mels]`` of a chunk whose latent 0 is video frame ``start_frame``.

        Latent j of the chunk covers video frames start_frame + 4j − 3 … start_frame + 4j.
        """
        return self.prepare(audio).latent_tokens(start_frame, num_latents)
