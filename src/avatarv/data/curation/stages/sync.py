"""Lip sync (seed: lip-sync score and desync filter).

Which scorer runs (``Config.scorer``, default ``auto``) depends on what the footage is (``Config.footage``):

- ``footage="world"``: the synthetic world's footage. ``auto`` = ``syncnet`` with the shipped world SyncNet
  (trained on the world's painted faces: meaningful there and nowhere else).
- ``footage="real"``: real faces. ``auto`` = ``syncnet`` when ``syncnet_weights`` is a path (the public
  ``syncnet_v2.model``), else ``landmark``: the domain-free landmark SyncNet (``eval.landmark_sync``: mediapipe
  lip geometry against MFCCs, trained on the world, checked on the real clips).
- ``footage="auto"`` (default): ``world`` when the input file is the world's (its labels lie beside it: a
  ``<stem>.json`` written by ``world.raw`` / ``world.clip``, or a near-duplicate listed in one), else ``real``.

Scorers:

- ``landmark``: mediapipe FaceMesh on every frame; each run of usable frames (one face, measurable, inside one
  shot) is a track, scored by the landmark SyncNet exactly as Sync-C is (offset, Sync-C, Sync-D over its whole
  length). Its offsets are absolute (trained so that in-sync speech reads 0: the world's mouth lag is taken out
  in training), so a track is out of sync when its offset is at least ``landmark_min_offset`` frames from **0**
  with Sync-C ≥ ``landmark_min_conf``: a whole video shifted is flagged, not only a stretch that differs from
  the rest. Thresholds from the five real clips (``benchmarks/landmark_sync_real.py``): in sync, the clips with a
  clear distance minimum read -1..+4 (5); the lips of one clip against another clip's audio give Sync-C
  0.6-3.9 (mean 2.2, 20 pairs), in-sync clips 1.4-9.1: below 3 the model's minimum is not evidence enough to
  drop footage (weak clips pass unjudged rather than being dropped at random). The decision is per track, not per window: on the real clips 4-s windows' offsets wander (an expressive
  selfie's grimaces move the lips without sound) while whole tracks read steadily; so a desync confined to part
  of a shot is found only when it dominates the track. Sliding-window offsets (``landmark_window``) are kept as
  arrays for inspection. Whole-video offset / Sync-C / Sync-D are recorded under ``landmark``.
- ``syncnet``: the eval suite's SyncNet, in sliding windows. Face tracks come from the ``faces``
  stage's boxes (single-face frames, inside one shot); each track's crops and audio give the SyncNet distance
  table ``[31, frames]`` (``eval.sync``); every ``window`` frames (hop ``step``) the table's columns are
  averaged and give that window's offset and confidence exactly as Sync-C is computed (median − min). A
  window is out of sync when its offset is at least ``min_offset`` frames from the video's own offset (the
  median over windows: renderers and cameras differ by a frame or two) with confidence ≥ ``min_conf``.
  Long windows decide *whether* and by how much a stretch is shifted, but smear its ends by up to half a
  window; a short window decides *where* (``refine_columns``, ``refine_runs``): inside each flagged run, a
  frame stays flagged only where the run's offset beats the baseline offset in the distance table averaged
  over ``refine_columns`` columns. Runs only shrink. On 6 x 60 s of world footage this took desync
  precision from 0.83 to 1.00 at the same recall (0.91).
  ``syncnet_weights``: ``world`` = the shipped world SyncNet (``src/avatarv/assets/eval``; trained on world faces,
  meaningful on world footage only), a path = a public ``syncnet_v2.model`` (real footage), ``""`` = none.
  Sync-C / Sync-D / offset of the whole video are recorded under ``syncnet``.
- ``envelope`` (runs with no network at all): the audio-visual offset from the cross-correlation of the
  subject's mouth openness (dlib landmarks, ``faces`` stage) with the speech loudness envelope (log RMS per
  video frame), in sliding windows of ``window`` frames inside each shot (``scenes``). A window whose best lag
  is at least ``min_offset`` frames away from the video's median lag, whose lag holds within ``stable_lag``
  frames over ``stable_windows`` windows either side (a weak peak on real footage jumps between lags) and
  with a clear peak (``min_corr``) is out of sync. Measured on the world: recall 0.8 (see the curation tests).

Frames another filter flags as static, choppy, blurred, shaking or dark are left out by both scorers: their
mouth motion is not measurable (and SyncNet's embeddings of a dark face are noise). So are the
``static_onset`` frames before each static run: the prefilter finds a freeze ~10 frames late (module
``prefilter``), and a frozen mouth under running speech reads as a large offset (a false desync on world
seed 1). The world's desync
defect shifts sound by 5–12 frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video, runs, shots_of


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


def window_scores(tracks: list, n: int, window: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame offset and confidence ``[T]`` each (NaN where no window covers a frame) from each track's distance
    table (``SyncResult.dists [31, m]``, column i = the 5-frame window at ``start_frame + i``): every ``step``
    columns, the columns within ``window // 2`` either side are averaged and scored as Sync-C is."""
    from avatarv.eval.sync import WINDOW_FRAMES, sync_scores

    offset = np.full(n, np.nan, np.float32)
    conf = np.full(n, np.nan, np.float32)
    half = window // 2
    for tr in tracks:
        d = tr.dists
        m = d.shape[1]
        for c in range(0, m, step):
            lo, hi = max(0, c - half), min(m, c + half)
            if hi - lo < half:
                continue
            off, sync_c, _ = sync_scores(d[:, lo:hi])
            f = tr.start_frame + c + WINDOW_FRAMES // 2  # the centre frame of window column c
            offset[f : f + step], conf[f : f + step] = off, sync_c
    return offset, conf


def syncnet_windows(
    model, frames: np.ndarray, audio: np.ndarray, boxes: np.ndarray, usable: np.ndarray, shots, window: int,
    step: int,
) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-frame SyncNet offset and confidence over sliding windows ``[T]`` each (NaN where no window covers a
    frame), and the per-track ``SyncResult`` list. ``audio``: 16 kHz mono aligned with ``frames`` (25 fps);
    ``usable [T]``: frames with exactly one measurable face."""
    from avatarv.eval.face_tracks import crop_track, tracks_from_boxes
    from avatarv.eval.sync import SAMPLES_PER_FRAME, SyncResult, distance_table, embed_track

    results = []
    for s0, s1 in shots:
        vis = usable & np.isfinite(boxes).all(1)
        vis[:s0] = False
        vis[s1:] = False
        for track in tracks_from_boxes(boxes, vis, min_track=window):
            crops = crop_track(frames, track)
            aud = audio[track.start * SAMPLES_PER_FRAME : track.stop * SAMPLES_PER_FRAME]
            v, a = embed_track(model, crops, aud)
            if len(v) == 0:
                continue
            results.append(SyncResult.from_dists(distance_table(v, a), track.start))
    offset, conf = window_scores(results, len(frames), window, step)
    return offset, conf, results


def landmark_windows(
    model, lip_track, audio: np.ndarray, usable: np.ndarray, shots, window: int, step: int, min_track: int = 0
) -> tuple[np.ndarray, np.ndarray, list]:
    """As :func:`syncnet_windows` with the landmark SyncNet: ``lip_track`` (``eval.landmark_sync.LipTrack`` of the
    whole video, NaN where no face); each run of ``usable`` frames with a face inside one shot, at least
    ``min_track`` frames long (default: ``window``), is one track."""
    from avatarv.data.curation.stages.common import runs as true_runs
    from avatarv.eval.landmark_sync import LipTrack, evaluate_lips
    from avatarv.eval.sync import SAMPLES_PER_FRAME

    ok = usable & lip_track.detected
    results = []
    for s0, s1 in shots:
        vis = ok.copy()
        vis[:s0] = False
        vis[s1:] = False
        for a, b in true_runs(vis, max(min_track or window, model.window + 2)):
            aud = audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME]
            try:
                results.append(evaluate_lips(model, LipTrack(lip_track.lips[a:b], lip_track.eyes[a:b]), aud,
                                             start_frame=a))
            except ValueError:  # audio shorter than the run: nothing to score
                continue
    offset, conf = window_scores(results, len(usable), window, step)
    return offset, conf, results


def refine_runs(desync: np.ndarray, offset: np.ndarray, baseline: float, tracks: list, columns: int) -> np.ndarray:
    """Shrink each flagged run of ``desync [T]`` to the frames where, in its track's distance table averaged
    over ``columns`` columns, the run's median offset has a smaller distance than the ``baseline`` offset.
    ``tracks``: ``SyncResult`` with ``dists [31, m]`` (column i = the 5-frame window at ``start_frame + i``)."""
    from scipy.ndimage import uniform_filter1d

    from avatarv.eval.sync import WINDOW_FRAMES

    out = np.zeros_like(desync)
    for tr in tracks:
        d = np.asarray(tr.dists, np.float64)
        vshift, m = (d.shape[0] - 1) // 2, d.shape[1]
        frames = tr.start_frame + np.arange(m) + WINDOW_FRAMES // 2
        keep = frames < len(desync)
        frames = frames[keep]
        base_row = int(np.clip(vshift - round(baseline), 0, d.shape[0] - 1))
        for a, b in runs(desync[frames], 1):
            off = int(np.median(offset[frames[a:b]]))
            row = int(np.clip(vshift - off, 0, d.shape[0] - 1))
            better = uniform_filter1d(d[row, :len(frames)] - d[base_row, :len(frames)], columns, mode="nearest") < 0
            out[frames[a:b][better[a:b]]] = True
    return out


class LipSync(Stage):
    name = "lipsync"
    inputs = ("normalise", "faces", "scenes", "prefilter", "visual")
    version = "9"
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        scorer: str = "auto"  # auto | landmark | syncnet | envelope (syncnet with syncnet_weights "" = envelope)
        footage: str = "auto"  # auto | real | world: picks the scorer for ``auto`` (module docstring)
        window: int = 50
        step: int = 5
        max_lag: int = 15
        min_offset: int = 4
        min_corr: float = 0.3  # envelope: correlation of the best lag
        min_conf: float = 1.0  # syncnet: the window's Sync-C (median − min distance)
        refine_columns: int = 9  # syncnet: the short window that places a flagged run's ends (0: off)
        static_onset: int = 12  # frames before a static run also left out (the prefilter finds freezes late)
        stable_windows: int = 2
        stable_lag: float = 2.0
        syncnet_weights: str = "world"  # world | a local syncnet_v2.model | "" (none)
        landmark_weights: str = ""  # landmark SyncNet weights ("" = the shipped assets/eval/landmark_sync)
        landmark_min_offset: int = 5  # landmark: |track offset| for a desync (in-sync real speech read -1..+4)
        landmark_min_conf: float = 3.0  # landmark: the track's Sync-C for a desync (mismatched audio: 0.6-3.9)
        landmark_window: int = 100  # landmark: frames per window of the inspection arrays (decisions are per track)

        def __post_init__(self):
            from avatarv.errors import ConfigError

            if self.scorer not in ("auto", "landmark", "syncnet", "envelope"):
                raise ConfigError(f"lipsync: unknown scorer {self.scorer!r} (auto | landmark | syncnet | envelope)")
            if self.footage not in ("auto", "real", "world"):
                raise ConfigError(f"lipsync: unknown footage {self.footage!r} (auto | real | world)")

    def scorer_for(self, source) -> str:
        """The scorer that runs on ``source`` (``Config.scorer`` unless ``auto``: see the module docstring)."""
        c = self.config
        if c.scorer != "auto":
            return c.scorer
        footage = c.footage if c.footage != "auto" else ("world" if is_world_footage(source) else "real")
        if footage == "world":
            return "syncnet" if c.syncnet_weights else "envelope"
        return "syncnet" if c.syncnet_weights not in ("", "world") else "landmark"

    def process(self, item: Item) -> Output:
        c = self.config
        video = load_video(item, require_audio=True)
        n = video.num_frames
        hop = int(round(video.sample_rate / video.fps))
        env = loudness_envelope(video.audio, n, hop)
        faces = item.upstream["faces"]
        n_faces = faces.array("n_faces")
        usable = n_faces == 1
        # a frozen, blurred or shaking picture has no usable mouth motion: other filters own those frames
        for stage, keys in (("prefilter", ("static", "choppy")), ("visual", ("blur", "shake", "dark"))):
            art = item.upstream.get(stage)
            if art is not None and art.ok:
                for k in keys:
                    for a, b in art.values.get(k, []):
                        usable[max(0, a - (c.static_onset if k == "static" else 0)) : b] = False
        shots = shots_of(item, n)
        mouth = np.where(usable, faces.array("mouth_open"), np.nan)
        lag, corr = self._envelope_lags(mouth, env, shots)
        k_all, r_all = best_lag(mouth, env, c.max_lag)
        values = {"frames": n, "offset_frames": k_all, "offset_corr": r_all}
        arrays = {"lag": lag, "corr": corr, "envelope": env}
        scorer = self.scorer_for(item.source)
        if scorer == "landmark":
            return self._landmark(video, usable, shots, values, arrays)
        if c.syncnet_weights:
            from avatarv.eval.sync import AUDIO_RATE
            from avatarv.media.audio import resample

            model = self._syncnet_model()
            audio16 = resample(video.audio, video.sample_rate, AUDIO_RATE)
            sn_off, sn_conf, tracks = syncnet_windows(model, video.frames, audio16, faces.array("box"), usable,
                                                      shots, c.window, c.step)
            arrays.update(syncnet_offset=sn_off, syncnet_conf=sn_conf)
            values["syncnet"] = _syncnet_summary(tracks)
        else:
            tracks = []
            values["syncnet"] = {"unavailable": "no SyncNet weights (syncnet_weights is empty)"}
        if scorer == "syncnet" and c.syncnet_weights:
            desync, baseline = self._syncnet_desync(arrays["syncnet_offset"], arrays["syncnet_conf"], tracks)
            values["scorer"] = "syncnet"
        else:
            desync, baseline = self._envelope_desync(lag, corr)
            values["scorer"] = "envelope"
        values.update(baseline_lag=baseline, desync=runs(desync, 3), desync_fraction=float(desync.mean()))
        arrays["desync"] = desync
        return Output(values=values, arrays=arrays)

    # ----------------------------------------------------------------- landmark
    def _landmark(self, video, usable: np.ndarray, shots, values: dict, arrays: dict, lips=None) -> Output:
        """The landmark scorer (``lips``: the video's ``LipTrack`` when already measured, else face mesh runs)."""
        from avatarv.eval.landmark_sync import LipTrack, load_landmark_sync
        from avatarv.eval.sync import AUDIO_RATE
        from avatarv.media.audio import resample
        from avatarv.media.face_mesh import face_mesh

        c = self.config
        model = load_landmark_sync(c.landmark_weights or None)
        if lips is None:
            lips = LipTrack.from_landmarks(face_mesh(video.frames).points)
        audio16 = resample(video.audio, video.sample_rate, AUDIO_RATE)
        off, conf, tracks = landmark_windows(model, lips, audio16, usable, shots, c.landmark_window, c.step,
                                             min_track=c.window)
        # one decision per track (a run of usable frames inside a shot), on the track's own offset and Sync-C:
        # absolute, since in-sync speech reads 0. Windows (``landmark_offset``) are kept for inspection only:
        # on real faces a 4-s window's offset wanders (grimaces, pauses), a whole track's holds.
        desync = np.zeros(len(usable), bool)
        for tr in tracks:
            if abs(tr.offset) >= c.landmark_min_offset and tr.sync_c >= c.landmark_min_conf:
                desync[tr.start_frame : tr.start_frame + tr.n_windows + model.window - 1] = True
        values["landmark"] = _syncnet_summary(tracks)
        values["syncnet"] = {"unavailable": "real footage: the landmark SyncNet scored it (syncnet_weights: a "
                                            "public syncnet_v2.model to use SyncNet)"}
        values.update(scorer="landmark", face_mesh_fraction=float(lips.detected.mean()) if len(usable) else 0.0,
                      baseline_lag=0.0, desync=runs(desync, 3), desync_fraction=float(desync.mean()))
        arrays.update(landmark_offset=off, landmark_conf=conf, desync=desync)
        return Output(values=values, arrays=arrays)

    # ----------------------------------------------------------------- envelope
    def _envelope_lags(self, mouth: np.ndarray, env: np.ndarray, shots) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        n = len(env)
        lag = np.full(n, np.nan, np.float32)
        corr = np.full(n, np.nan, np.float32)
        half = c.window // 2
        shot_of = np.zeros(n, int)
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
        return lag, corr

    def _envelope_desync(self, lag: np.ndarray, corr: np.ndarray) -> tuple[np.ndarray, float]:
        c = self.config
        n = len(lag)
        baseline = float(np.nanmedian(lag)) if np.isfinite(lag).any() else 0.0
        # a real offset holds still: the lag agrees within ``stable_lag`` frames over ``stable_windows`` windows
        k = c.stable_windows * c.step
        pad = np.pad(np.nan_to_num(lag, nan=1e3), k, mode="edge")
        spread = np.array([np.ptp(pad[t : t + 2 * k + 1 : c.step]) for t in range(n)])
        desync = ((np.abs(np.nan_to_num(lag - baseline)) >= c.min_offset) & (np.nan_to_num(corr) >= c.min_corr)
                  & (spread <= c.stable_lag))
        return desync, baseline

    # ------------------------------------------------------------------ syncnet
    def _syncnet_desync(self, offset: np.ndarray, conf: np.ndarray, tracks: list = ()) -> tuple[np.ndarray, float]:
        c = self.config
        baseline = float(np.nanmedian(offset)) if np.isfinite(offset).any() else 0.0
        desync = (np.abs(np.nan_to_num(offset - baseline)) >= c.min_offset) & (np.nan_to_num(conf) >= c.min_conf)
        if c.refine_columns and tracks:
            desync = refine_runs(desync, offset, baseline, list(tracks), c.refine_columns)
        return desync, baseline

    def _syncnet_model(self):
        from avatarv.eval.world_syncnet import load_sync_model

        w = self.config.syncnet_weights
        return load_sync_model(None if w == "world" else w)


def is_world_footage(source) -> bool:
    """True when ``source`` is a file the synthetic world wrote: its labels lie beside it (``<stem>.json`` from
    ``world.raw`` with ``shots`` and ``intervals``, or from ``world.clip`` with ``mouth_lag_frames``), or it is a
    near-duplicate that a ``world.raw`` JSON in its folder lists."""
    import json
    from pathlib import Path

    source = Path(source)

    def doc(p: Path) -> dict:
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            return {}
        return d if isinstance(d, dict) else {}

    own = doc(source.with_suffix(".json"))
    if ("shots" in own and "intervals" in own) or "mouth_lag_frames" in own:
        return True
    if "_dup" in source.stem:
        raw = doc(source.with_name(source.stem.split("_dup")[0] + ".json"))
        return any(d.get("file") == source.name for d in raw.get("duplicates", []) if isinstance(d, dict))
    return False


def _syncnet_summary(tracks: list) -> dict:
    """Sync-C / Sync-D / offset of the whole video, window-weighted over tracks (``VideoSyncResult``)."""
    if not tracks:
        return {"unavailable": "no single-face track long enough for SyncNet"}
    from avatarv.eval.sync_video import VideoSyncResult

    video = VideoSyncResult(tracks=tracks)
    return {"sync_c": video.sync_c, "sync_d": video.sync_d, "offset": int(video.offset), "n_tracks": len(tracks)}
