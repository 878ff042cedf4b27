"""Sync-C / Sync-D exactly as the public SyncNet evaluation (joonson/syncnet_python, ``SyncNetInstance.evaluate``).

Protocol (video at 25 fps, audio at 16 kHz mono):

1. MFCC front-end: ``python_speech_features.mfcc`` with its defaults (13 coefficients, 25 ms windows, 10 ms hop,
   i.e. 100 Hz; 26 mel filters, 512-point FFT, pre-emphasis 0.97, lifter 22, c0 replaced by log frame energy)
   on the 16-bit integer samples (the original reads the wav with ``scipy.io.wavfile``: int16 values, not
   floats in [-1, 1]; the scale changes c0).
2. ``min_length = min(video frames, floor(audio samples / 640))``; windows ``i = 0 .. min_length - 6``
   (``range(0, lastframe)`` with ``lastframe = min_length - 5``): video frames ``i..i+4`` and MFCC frames
   ``4i..4i+19``, each embedded by SyncNet.
3. ``calc_pdist`` with ``vshift = 15``: the audio embeddings are padded with 15 zero rows at both ends; for video
   window ``i`` and offset index ``j`` in ``0..30``, ``d[j, i] = || v_i - a_{i+j-15} + 1e-6 ||`` (torch's
   ``pairwise_distance`` adds eps=1e-6; the zero padding is kept, as in the original).
4. ``mdist = mean over windows``; **Sync-D = min(mdist)**, **Sync-C = median(mdist) - min(mdist)**,
   **offset = 15 - argmin(mdist)** (first index on ties, as ``torch.min``; the median of 31 values is the
   16th smallest).

Sign convention of the offset (follows from step 3): the best match pairs video frame ``i`` with audio frame
``i - offset``. **offset > 0: the audio leads the video** (a sound is heard ``offset`` frames before the mouth
makes it; equivalently the video is late); offset < 0: the audio lags the video; 0: in sync. One unit is one
video frame (40 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import signal

from avatarv.eval.syncnet import MFCC_PER_WINDOW, WINDOW_FRAMES, SyncNet, lip_input

VIDEO_FPS = 25.0
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // int(VIDEO_FPS)  # 640
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps video
VSHIFT = 15
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance default


# --- pure parts ---------------------------------------------------------------------------------------------


def mfcc_features(audio: np.ndarray, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """SyncNet's audio front-end: mono waveform (float in [-1, 1], or int16) -> MFCCs ``[13, M]`` at 100 Hz.

    Frame ``m`` covers samples ``160 m .. 160 m + 399``. Float audio is quantised to int16 first, which is what
    the original sees after ffmpeg writes a ``pcm_s16le`` wav.
    """
    import python_speech_features

    if sample_rate != AUDIO_RATE:
        raise ValueError(f"SyncNet expects {AUDIO_RATE} Hz audio, got {sample_rate} Hz (resample first)")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio [N], got shape {audio.shape}")
    if np.issubdtype(audio.dtype, np.floating):
        audio = np.clip(np.round(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    feats = python_speech_features.mfcc(audio, sample_rate)  # [M, 13]
    return np.ascontiguousarray(feats.T)  # [13, M] as numpy.stack(zip(*mfcc)) in the original


def window_count(n_video_frames: int, n_audio_samples: int) -> int:
    """Number of 5-frame windows the original evaluates: ``min(T, floor(N / 640)) - 5`` (not ``- 4``: the
    original's ``range(0, lastframe)`` leaves the last full window out; we keep that for identical numbers)."""
    min_length = min(n_video_frames, n_audio_samples // SAMPLES_PER_FRAME)
    return max(min_length - WINDOW_FRAMES, 0)


def mfcc_windows(mfcc: np.ndarray, n_windows: int) -> np.ndarray:
    """MFCC windows for video windows ``0..n-1``: ``[n, 1, 13, 20]``, window ``i`` = MFCC frames ``4i..4i+19``."""
    need = MFCC_PER_FRAME * (n_windows - 1) + MFCC_PER_WINDOW if n_windows else 0
    if mfcc.shape[1] < need:
        raise ValueError(f"{mfcc.shape[1]} MFCC frames, need {need} for {n_windows} windows")
    starts = np.arange(n_windows) * MFCC_PER_FRAME
    idx = starts[:, None] + np.arange(MFCC_PER_WINDOW)[None, :]  # [n, 20]
    return np.ascontiguousarray(mfcc[:, idx].transpose(1, 0, 2)[:, None])  # [n,1,13,20]


def distance_table(video_emb: np.ndarray, audio_emb: np.ndarray, vshift: int = VSHIFT) -> np.ndarray:
    """``calc_pdist``: ``[2*vshift+1, n]`` with ``d[j, i] = || v_i - a_{i+j-vshift} + eps ||`` and zero vectors
    standing in for audio outside ``0..n-1``."""
    v = np.asarray(video_emb, dtype=np.float64)
    a = np.asarray(audio_emb, dtype=np.float64)
    if v.shape != a.shape or v.ndim != 2:
        raise ValueError(f"video and audio embeddings must be [n, D] of one shape: {v.shape} vs {a.shape}")
    n, dim = v.shape
    padded = np.concatenate([np.zeros((vshift, dim)), a, np.zeros((vshift, dim))], 0)  # [n+2*vshift, D]
    offsets = np.arange(2 * vshift + 1)
    rows = np.arange(n)[None, :] + offsets[:, None]  # [31, n] index into padded
    diff = v[None, :, :] - padded[rows] + PAIRWISE_EPS  # [31, n, D]
    return np.sqrt((diff * diff).sum(-1))


def sync_scores(dists: np.ndarray) -> tuple[int, float, float]:
    """``(offset, sync_c, sync_d)`` from a distance table ``[2*vshift+1, n_windows]`` (``[31, n]`` for vshift 15).

    ``mdist`` = mean over windows; Sync-D = ``min(mdist)``; Sync-C = ``median(mdist) - min(mdist)``; offset =
    ``vshift - argmin(mdist)`` (first minimum on ties; lower median for an even count, as ``torch.median``).
    offset > 0 means the audio leads the video (see the module docstring).
    """
    d = np.asarray(dists, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] % 2 == 0 or d.shape[1] == 0:
        raise ValueError(f"expected a distance table [2*vshift+1, n>0], got shape {d.shape}")
    vshift = (d.shape[0] - 1) // 2
    mdist = d.mean(axis=1)
    min_idx = int(np.argmin(mdist))
    sync_d = float(mdist[min_idx])
    median = float(np.sort(mdist)[(mdist.size - 1) // 2])
    return vshift - min_idx, median - sync_d, sync_d


def framewise_confidence(dists: np.ndarray) -> np.ndarray:
    """Per-window confidence as the original logs it: ``median(mdist) - d[argmin, i]``, median-filtered (9)."""
    d = np.asarray(dists, dtype=np.float64)
    mdist = d.mean(axis=1)
    conf = np.sort(mdist)[(mdist.size - 1) // 2] - d[int(np.argmin(mdist))]
    return signal.medfilt(conf, kernel_size=9) if conf.size >= 9 else conf


@dataclass
class SyncResult:
    """Scores of one face track: SyncNet's offset (frames; > 0: audio leads), Sync-C, Sync-D."""

    offset: int
    sync_c: float
    sync_d: float
    n_windows: int
    dists: np.ndarray = field(repr=False)  # [31, n_windows]
    start_frame: int = 0  # first frame of the track in the video

    @classmethod
    def from_dists(cls, dists: np.ndarray, start_frame: int = 0) -> SyncResult:
        offset, sync_c, sync_d = sync_scores(dists)
        return cls(offset, sync_c, sync_d, int(dists.shape[1]), dists, start_frame)

    def to_json(self) -> dict:
        return {
            "offset": self.offset,
            "sync_c": self.sync_c,
            "sync_d": self.sync_d,
            "n_windows": self.n_windows,
            "start_frame": self.start_frame,
        }


# --- with the network ---------------------------------------------------------------------------------------


@torch.no_grad()
def embed_track(
    model: SyncNet, crops_rgb: np.ndarray, audio: np.ndarray, batch_size: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """SyncNet embeddings of one face track: crops ``[T,224,224,3]`` uint8 RGB at 25 fps and the track's audio
    (16 kHz mono, starting at the track's first frame) -> ``(video_emb, audio_emb)``, each ``[n_windows, D]``.

    ``model`` needs ``embed_lip_sequence([1,3,T,224,224]) -> [T-4, D]`` and ``embed_audio([n,1,13,20]) -> [n, D]``
    (any SyncNet-like embedder: the public network, a world-trained one, a test oracle)."""
    if hasattr(model, "eval"):
        model.eval()
    n = window_count(len(crops_rgb), len(audio))
    if n == 0:
        return np.zeros((0, 0)), np.zeros((0, 0))
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    device = params[0].device if params else torch.device("cpu")
    frames = lip_input(crops_rgb[: n + WINDOW_FRAMES - 1]).to(device)  # [1,3,n+4,224,224]
    video_emb = model.embed_lip_sequence(frames, chunk=batch_size)  # [n, D]
    mfcc = torch.from_numpy(mfcc_windows(mfcc_features(audio), n)).float().to(device)  # [n,1,13,20]
    audio_emb = torch.cat([model.embed_audio(mfcc[i : i + batch_size]) for i in range(0, n, batch_size)], 0)
    return video_emb.double().cpu().numpy(), audio_emb.double().cpu().numpy()


def evaluate_track(
    model: SyncNet, crops_rgb: np.ndarray, audio: np.ndarray, vshift: int = VSHIFT, start_frame: int = 0
) -> SyncResult:
    """Offset, Sync-C and Sync-D of one face track (``SyncNetInstance.evaluate`` on one crop video)."""
    video_emb, audio_emb = embed_track(model, crops_rgb, audio)
    if len(video_emb) == 0:
        raise ValueError(
            f"track too short for SyncNet: {len(crops_rgb)} frames, {len(audio)} samples (need > 5 frames of both)"
        )
    return SyncResult.from_dists(distance_table(video_emb, audio_emb, vshift), start_frame)
