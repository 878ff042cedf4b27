"""Lip sync (seed: lip-sync score and desync filter).

Two scorers:

- ``syncnet``: the eval suite's SyncNet (``avatarv.eval.sync_video``) when ``syncnet_weights`` points at a local
  ``syncnet_v2.model``: Sync-C / Sync-D / offset per face track. No public weights ship here, so without a
  path this part is ``unavailable`` (reported, never invented).
- ``envelope`` (the default that runs everywhere): the audio-visual offset from the cross-correlation of the
  subject's mouth openness (dlib landmarks, ``faces`` stage) with the speech loudness envelope (log RMS per
  video frame), in sliding windows of ``window`` frames inside each shot (``scenes``). A window whose best lag is at least ``min_offset``
  frames away from the video's median lag (frames another filter flags as static, choppy, blurred or
  shaking are left out: their mouth motion is not measurable), and the lag holds within ``stable_lag`` frames
  over ``stable_windows`` windows either side (a weak peak on real footage jumps between lags) with a clear peak (``min_corr``) is out of sync. Speech leads the mouth by about a
  frame in real talking; the world's desync defect shifts sound by 5-12 frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video, runs


def loudness_envelope(audio: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """log RMS per video frame [T]."""
    a = np.zeros(n_frames * hop, np.float32)
    m = min(len(audio), len(a))
    a[:m] = audio[:m]
    rms = np.sqrt((a.reshape(n_frames, hop) ** 2).mean(1) + 1e-8)
    return np.log(rms + 1e-4).astype(np.float32)


def best_lag(mouth: np.ndarray, env: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag k (frames; > 0: sound late) maximising corr(mouth[t], env[t + k]), and that correlation."""
    best = (0, -1.0)
    n = len(mouth)
    for k in range(-max_lag, max_lag + 1):
        a = mouth[max(0, -k) : n - max(0, k)]
        b = env[max(0, k) : n - max(0, -k)] if k >= 0 else env[: n + k]
        if k < 0:
            b = env[0 : n + k]
            a = mouth[-k:n]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 10 or a[ok].std() < 1e-6 or b[ok].std() < 1e-6:
            continue
        r = float(np.corrcoef(a[ok], b[ok])[0, 1])
        if r > best[1]:
            best = (k, r)
    return best


class LipSync(Stage):
    name = "lipsync"
    inputs = ("normalise", "faces", "scenes", "prefilter", "visual")
    version = "4"
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        window: int = 50
        step: int = 5
        max_lag: int = 15
        min_offset: int = 4
        min_corr: float = 0.3
        stable_windows: int = 2
        stable_lag: float = 2.0
        syncnet_weights: str = ""

    def process(self, item: Item) -> Output:
        c = self.config
        video = load_video(item, require_audio=True)
        n = video.num_frames
        hop = int(round(video.sample_rate / video.fps))
        env = loudness_envelope(video.audio, n, hop)
        mouth = item.upstream["faces"].array("mouth_open")
        n_faces = item.upstream["faces"].array("n_faces")
        mouth = np.where(n_faces == 1, mouth, np.nan)
        # a frozen, blurred or shaking picture has no usable mouth motion: other filters own those frames
        for stage, keys in (("prefilter", ("static", "choppy")), ("visual", ("blur", "shake"))):
            art = item.upstream.get(stage)
            if art is not None and art.ok:
                for k in keys:
                    for a, b in art.values.get(k, []):
                        mouth[a:b] = np.nan
        lag = np.full(n, np.nan, np.float32)
        corr = np.full(n, np.nan, np.float32)
        half = c.window // 2
        from avatarv.data.curation.stages.common import shots_of

        shot_of = np.zeros(n, int)
        shots = shots_of(item, n)
        for k, (a, b) in enumerate(shots):
            shot_of[a:b] = k
        for centre in range(0, n, c.step):
            s0, s1 = shots[shot_of[centre]]  # a window never crosses a cut: another face, another voice
            a, b = max(s0, centre - half), min(s1, centre + half)
            if b - a < c.window // 2:
                continue
            k, r = best_lag(mouth[a:b], env[a:b], c.max_lag)
            if r > -1:
                lag[centre : centre + c.step], corr[centre : centre + c.step] = k, r
        k_all, r_all = best_lag(mouth, env, c.max_lag)
        # the video's own lag (median over windows) is "in sync": renderers and cameras differ by a frame or two
        baseline = float(np.nanmedian(lag)) if np.isfinite(lag).any() else 0.0
        # a real offset holds still: the lag agrees within ``stable_lag`` frames over ``stable_windows`` windows
        # either side (on real footage a weak correlation peak jumps between lags from window to window)
        k = c.stable_windows * c.step
        pad = np.pad(np.nan_to_num(lag, nan=1e3), k, mode="edge")
        spread = np.array([np.ptp(pad[t : t + 2 * k + 1 : c.step]) for t in range(n)])
        desync = ((np.abs(np.nan_to_num(lag - baseline)) >= c.min_offset) & (np.nan_to_num(corr) >= c.min_corr)
                  & (spread <= c.stable_lag))
        values = {"frames": n, "offset_frames": k_all, "baseline_lag": baseline, "offset_corr": r_all, "desync": runs(desync, 3),
                  "desync_fraction": float(desync.mean())}
        if c.syncnet_weights:
            values["syncnet"] = self._syncnet(video)
        else:
            values["syncnet"] = {"unavailable": "no SyncNet weights (set syncnet_weights to a local "
                                                "syncnet_v2.model; none ship here)"}
        return Output(values=values, arrays={"lag": lag, "corr": corr, "desync": desync, "envelope": env})

    def _syncnet(self, video) -> dict:
        from avatarv.eval.sync_video import evaluate_sync_video
        from avatarv.eval.syncnet import load_syncnet

        res = evaluate_sync_video(video, load_syncnet(self.config.syncnet_weights))
        return {"sync_c": res.sync_c, "sync_d": res.sync_d, "offset": res.offset}
