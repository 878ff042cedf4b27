"""Categorisation over 15 measurable dimensions (seed: semantic categorisation for balanced sampling).

Contract (shard pair sampling balances over it): ``values["categories"] = {dimension: label}`` with every one of
``DIMENSIONS`` present; a dimension that could not be measured is ``"unknown"`` and its reason is in
``values["unmeasured"][dimension]``. ``values["measures"]`` holds the number behind each label.

| dimension | measured from | labels (cut points) |
|---|---|---|
| shot_size | faces: median face-box height / frame height | close_up (>= 0.45), medium (>= 0.2), wide, no_face |
| head_pose_range | faces: largest 5-95th percentile spread of yaw/pitch/roll (deg) | still (< 10), moderate (< 30), wide |
| head_orientation | faces: median abs yaw (deg) | frontal (< 15), three_quarter (< 40), profile |
| lighting_level | faces: median face luma (frame luma from ``visual`` without a face) | dim (< 70), normal (<= 180), bright |
| lighting_balance | faces: mean left/right face luma imbalance | even (< 0.12), side_lit |
| indoor_outdoor | frames: open sky (bright, blue, smooth) in the top half of the background (``scene_measures``) | outdoor (>= 0.1), indoor |
| background_type | frames: background (outside the widened face box) Laplacian energy over variance after a 1 px blur | plain (< 0.03, or grey std < 8), textured |
| motion_level | visual: mean optical-flow magnitude (px at 128) | still (< 0.15), calm (< 0.6), active |
| camera_motion | visual: median global shift (px at 128) and shake fraction | steady (< 0.15), moving, shaky (shake >= 0.2) |
| speaking_rate | speech transcripts (syllables / speech s), else ``voice.measure.speaking_rate`` (Whisper) | slow (< 3.5), normal (<= 5.5), fast |
| language | speech: most common transcript language (langid) | ISO code, or unknown |
| number_of_people | faces: median face count | none, one, several |
| resolution | normalise: frame height (px) | low (< 360), sd (< 720), hd |
| audio_noise | audio: loud (95th pct) over quiet (10th pct) 20 ms RMS, dB | clean (>= 30), moderate (>= 15), noisy, silent |
| voice_pitch | audio: median F0 (WORLD Harvest, first ``pitch_seconds`` s) over voiced frames (Hz) | low (< 145), mid (<= 210), high, no_voice |

The cut points are round numbers of the usual ranges (voice pitch: adult male speech centres near 120 Hz,
female near 210 Hz; speaking rate: conversational English 4-5 syllables/s), not tuned on any set. Indoor vs
outdoor from colour is the weakest: it reads open sky only, so an outdoor shot against foliage or a wall is
"indoor" (the real clip of a young man before palm leaves at night is); vegetation read by hue was tried and
dropped: world backgrounds with green gradients and shelves read as foliage. On world scenes (128 px):
plain (gradient, room, studio, outdoor) 0.004-0.021, textured (shelves, bokeh, texture) 0.047-0.089; real
clips: a white office wall 0.011, a plain selfie wall 0.018, the Capitol hall 0.053 (frame with the face).
A VLM (``content.LocalVLM``) is the better judge where one is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video

DIMENSIONS = ("shot_size", "head_pose_range", "head_orientation", "lighting_level", "lighting_balance",
              "indoor_outdoor", "background_type", "motion_level", "camera_motion", "speaking_rate", "language",
              "number_of_people", "resolution", "audio_noise", "voice_pitch")


def bucket(x: float | None, cuts: tuple[float, ...], labels: tuple[str, ...]) -> str:
    """``labels[i]`` for the first cut ``x < cuts[i]``, the last label above them all; "unknown" for None/NaN."""
    if x is None or not np.isfinite(x):
        return "unknown"
    for c, lab in zip(cuts, labels, strict=False):
        if x < c:
            return lab
    return labels[len(cuts)]


def background_mask(h: int, w: int, box) -> np.ndarray:
    """[h, w] bool: outside the face box widened 1.5x sideways and down to the bottom (the body)."""
    m = np.ones((h, w), bool)
    if box is not None and np.isfinite(box).all():
        x0, y0, x1, y1 = box
        cx, bw = (x0 + x1) / 2, (x1 - x0) * 1.5
        m[int(max(y0 - 0.3 * (y1 - y0), 0)) :, int(max(cx - bw, 0)) : int(min(cx + bw, w))] = False
    return m


def scene_measures(frame: np.ndarray, box) -> dict[str, float]:
    """Sky share and background texture of one RGB frame (face box [x0, y0, x1, y1] in its pixels, or None),
    measured at 128 px on the longer side: ``sky`` = bright (V >= 150), blue (H 90-130 of 180), saturated
    (S >= 40), smooth (9 x 9 mean |Laplacian| < 6) pixels in the top half of the background; ``bg_energy`` =
    mean squared Laplacian of the grey background after a sigma-1 blur (render and sensor noise removed) over its
    variance; ``bg_std`` its grey standard deviation."""
    import cv2

    h, w = frame.shape[:2]
    s = 128 / max(h, w)
    img = cv2.resize(frame, (max(int(w * s), 8), max(int(h * s), 8)), interpolation=cv2.INTER_AREA)
    hh, ww = img.shape[:2]
    bg = background_mask(hh, ww, None if box is None else np.asarray(box, np.float64) * s)
    if bg.mean() < 0.05:
        bg[:] = True
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)  # H 0..180, S, V 0..255
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    local = cv2.blur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (9, 9))
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sky = (hue >= 90) & (hue <= 130) & (sat >= 40) & (val >= 150) & (local < 6)
    top = bg.copy()
    top[hh // 2 :] = False
    g = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
    lap = cv2.Laplacian(g, cv2.CV_32F)
    return {"sky": float(sky[top].mean()) if top.any() else 0.0,
            "bg_energy": float((lap[bg] ** 2).mean() / (g[bg].var() + 1.0)), "bg_std": float(g[bg].std())}


def noise_db(wave: np.ndarray, sr: int) -> float | None:
    """Loud (95th percentile) over quiet (10th) 20 ms RMS in dB; None for silence."""
    hop = int(0.02 * sr)
    if len(wave) < 10 * hop:
        return None
    rms = np.sqrt(np.mean(wave[: len(wave) // hop * hop].reshape(-1, hop).astype(np.float64) ** 2, axis=1))
    loud, quiet = np.percentile(rms, 95), np.percentile(rms, 10)
    if loud < 1e-4:
        return None
    return float(20 * np.log10(loud / max(quiet, 1e-6)))


class Categories(Stage):
    name = "categories"
    version = "1"
    inputs = ("normalise", "faces", "visual", "speech")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        frames_sampled: int = 8  # frames for the scene measures (evenly spaced)
        pitch_seconds: float = 8.0  # audio analysed for the voice pitch (Harvest costs ~0.5 s per second)

    def process(self, item: Item) -> Output:
        c = self.config
        video = load_video(item)
        n, h = video.num_frames, video.frames.shape[1]
        m: dict[str, float | str | None] = {}
        why: dict[str, str] = {}
        faces = item.upstream.get("faces")
        box_arr = None
        if faces is not None and faces.ok:
            nf = faces.array("n_faces")
            box_arr = faces.array("box")
            pose = faces.array("pose")
            has = nf > 0
            m["people_median"] = float(np.median(nf))
            if has.any():
                m["face_height"] = float(np.nanmedian((box_arr[has, 3] - box_arr[has, 1]) / h))
                m["yaw_abs_median"] = float(np.nanmedian(np.abs(pose[has, 0])))
                from avatarv.data.curation.stages.faces import pose_range

                m["pose_range_deg"] = float(np.nanmax(pose_range(pose[has])))
                m["face_luma"] = faces.values.get("face_luma_mean")
                m["light_imbalance"] = faces.values.get("light_imbalance_mean")
        else:
            for d in ("shot_size", "head_pose_range", "head_orientation", "lighting_balance", "number_of_people"):
                why[d] = "no faces artifact" if faces is None else f"faces unavailable: {faces.reason}"
        visual = item.upstream.get("visual")
        if visual is not None and visual.ok:
            m["motion_mean"] = visual.values.get("motion_mean")
            m["shake_fraction"] = visual.values.get("shake_fraction")
            shift = visual.array("shift")
            m["shift_median"] = float(np.median(np.linalg.norm(shift[1:], axis=1))) if len(shift) > 1 else 0.0
            m.setdefault("face_luma", None)
            if m["face_luma"] is None:
                m["frame_luma"] = visual.values.get("luma_mean")
        else:
            for d in ("motion_level", "camera_motion"):
                why[d] = "no visual artifact"
        # scene measures on a few frames
        idx = np.linspace(0, n - 1, min(c.frames_sampled, n)).astype(int)
        sm = [scene_measures(video.frames[t], None if box_arr is None or nf[t] == 0 else box_arr[t]) for t in idx]
        for k in ("sky", "bg_energy", "bg_std"):
            m[k] = float(np.median([s[k] for s in sm]))
        m["height"] = float(h)
        # audio
        speech = item.upstream.get("speech")
        if video.audio is not None and len(video.audio):
            from avatarv.voice.synth import to_16k

            wave = to_16k(np.asarray(video.audio, np.float32), int(video.sample_rate))
            m["noise_db"] = noise_db(wave, 16000)
            m.update(self._voice(wave, speech, c.pitch_seconds))
        else:
            for d in ("speaking_rate", "audio_noise", "voice_pitch"):
                why[d] = "no sound track"
        if speech is not None and speech.ok:
            langs = [cl.get("text_language") for cl in speech.values.get("clips", []) if cl.get("text_language")]
            m["language"] = max(set(langs), key=langs.count) if langs else None
            if not langs:
                why["language"] = "no transcript language (no speech heard, or ASR off)"
        else:
            why["language"] = "no speech artifact (transcripts)"
        cats = self.label(m)
        for d, lab in cats.items():
            if lab == "unknown" and d not in why:
                why[d] = "not measurable on this item"
        return Output(values={"categories": cats, "measures": m, "unmeasured": why})

    @staticmethod
    def _voice(wave: np.ndarray, speech, pitch_seconds: float) -> dict[str, float | str | None]:
        from avatarv.voice.measure import count_syllables, speaking_rate, speech_spans
        from avatarv.voice.world import track_f0

        spans = speech_spans(wave)
        speech_s = float(sum(e - s for s, e in spans))
        out: dict[str, float | str | None] = {"speech_s": speech_s}
        f0 = track_f0(wave[: int(pitch_seconds * 16000)], accurate=True) if speech_s > 0.5 else np.zeros(0)
        voiced = f0[f0 > 0]
        out["f0_median_hz"] = float(np.median(voiced)) if voiced.size >= 10 else None
        text = ""
        if speech is not None and speech.ok:
            text = " ".join(cl.get("transcript", "") or "" for cl in speech.values.get("clips", []))
        out["syllables_per_s"], out["rate_method"] = None, None
        if speech_s > 0.5 and text.strip():
            out["syllables_per_s"], out["rate_method"] = count_syllables(text) / speech_s, "transcript"
        elif speech_s > 0.5:
            est = speaking_rate(wave)
            out["syllables_per_s"] = est.syllables_per_s if np.isfinite(est.syllables_per_s) else None
            out["rate_method"] = est.method
        return out

    @staticmethod
    def label(m: dict) -> dict[str, str]:
        """Measures -> the 15 labels (module docstring's table)."""
        g = m.get
        cats = {
            "shot_size": ("no_face" if g("people_median") == 0 and g("face_height") is None else
                          bucket(g("face_height"), (0.2, 0.45), ("wide", "medium", "close_up"))),
            "head_pose_range": bucket(g("pose_range_deg"), (10, 30), ("still", "moderate", "wide")),
            "head_orientation": bucket(g("yaw_abs_median"), (15, 40), ("frontal", "three_quarter", "profile")),
            "lighting_level": bucket(g("face_luma") if g("face_luma") is not None else g("frame_luma"),
                                     (70, 180.0001), ("dim", "normal", "bright")),
            "lighting_balance": bucket(g("light_imbalance"), (0.12,), ("even", "side_lit")),
            "indoor_outdoor": bucket(g("sky"), (0.1,), ("indoor", "outdoor")),
            "background_type": ("plain" if (g("bg_std") is not None and g("bg_std") < 8)
                                else bucket(g("bg_energy"), (0.03,), ("plain", "textured"))),
            "motion_level": bucket(g("motion_mean"), (0.15, 0.6), ("still", "calm", "active")),
            "camera_motion": ("shaky" if (g("shake_fraction") or 0) >= 0.2 else
                              bucket(g("shift_median"), (0.15,), ("steady", "moving"))),
            "speaking_rate": bucket(g("syllables_per_s"), (3.5, 5.5001), ("slow", "normal", "fast")),
            "language": g("language") or "unknown",
            "number_of_people": bucket(g("people_median"), (0.5, 1.5), ("none", "one", "several")),
            "resolution": bucket(g("height"), (360, 720), ("low", "sd", "hd")),
            "audio_noise": ("silent" if "noise_db" in m and g("noise_db") is None else
                            bucket(g("noise_db"), (15, 30), ("noisy", "moderate", "clean"))),
            "voice_pitch": ("no_voice" if "f0_median_hz" in m and g("f0_median_hz") is None else
                            bucket(g("f0_median_hz"), (145, 210.0001), ("low", "mid", "high"))),
        }
        assert tuple(cats) == DIMENSIONS
        return cats
