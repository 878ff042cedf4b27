"""Helpers shared by stages: decoding an item once at the pipeline's rate, windows, intervals."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from avatarv.data.curation.stage import Item
from avatarv.media import Video, read_video

FPS = 25.0


def load_video(item: Item, require_audio: bool = False) -> Video:
    """The item's video at 25 fps (the normalised copy when a normalise stage ran upstream)."""
    norm = item.upstream.get("normalise")
    if norm is not None and norm.ok and norm.values.get("store") == "npy":
        audio = np.load(norm.path / "audio.npy") if (norm.path / "audio.npy").is_file() else None
        return Video(np.load(norm.path / "frames.npy"), FPS, audio, norm.values["sample_rate"], item.source)
    return read_video(item.video_path(), fps=FPS, require_audio=require_audio)


def grey_small(frames: np.ndarray, side: int = 64) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, side, side] float32 luma, area-downsampled (cheap per-frame statistics)."""
    import cv2

    out = np.empty((len(frames), side, side), np.float32)
    for t, f in enumerate(frames):
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        out[t] = cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA)
    return out


def runs(mask: np.ndarray, min_len: int = 1) -> list[list[int]]:
    """[start, end) runs of True in a boolean vector, at least ``min_len`` long."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [[int(a), int(b)] for a, b in zip(starts, ends, strict=True) if b - a >= min_len]


def close_gaps(mask: np.ndarray, gap: int) -> np.ndarray:
    """Fill False gaps shorter than ``gap`` between True runs (morphological closing in 1-D)."""
    out = np.asarray(mask, bool).copy()
    r = runs(~out)
    for a, b in r:
        if a > 0 and b < len(out) and b - a < gap:
            out[a:b] = True
    return out


def mp4_bytes(frames: np.ndarray, fps: float, audio: np.ndarray | None, sample_rate: int, crf: int = 18) -> bytes:
    """h264 + AAC mp4 bytes. One x264 thread: with ``threads=auto`` the bytes change with the machine's load
    (measured: 2 of 6 concurrent encodes of the same frames differed), and artifacts must be reproducible."""
    from avatarv.media.encoder import Mp4Encoder

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"
        enc = Mp4Encoder(path, fps, frames.shape[2], frames.shape[1], sample_rate if audio is not None else None,
                         crf, x264_options={"threads": "1"})
        enc.video.codec_context.thread_count = 1  # PyAV's own default overrides x264's option
        try:
            step = max(1, int(round(fps)))
            for a in range(0, len(frames), step):  # one-second spans keep video and audio interleaved
                b = min(a + step, len(frames))
                chunk = None if audio is None else audio[int(a / fps * sample_rate): int(b / fps * sample_rate)]
                enc.append(frames[a:b], chunk)
            if audio is not None and int(len(frames) / fps * sample_rate) < len(audio):
                enc.append(frames[:0], audio[int(len(frames) / fps * sample_rate):])
            enc.close()
        except BaseException:
            enc.abort()
            raise
        return path.read_bytes()


def shots_of(item: Item, n_frames: int) -> list[list[int]]:
    """Shot intervals from an upstream ``scenes`` stage, else the whole video as one shot."""
    sc = item.upstream.get("scenes")
    if sc is not None and sc.ok:
        return [list(s) for s in sc.values["shots"]]
    return [[0, n_frames]]
