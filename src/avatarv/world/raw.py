"""Raw footage for the data engine: long videos made of shots, with labelled defects.

A raw video is a sequence of shots (one identity talking in one scene, 3–7 s each) joined by hard cuts,
fades through black or dissolves. Shots carry at most one defect over a labelled interval:

    static          one frame frozen (frame difference exactly zero)
    choppy          each frame held k = 2..4 times (low effective frame rate)
    dropped         single frames replaced by their predecessor (list of frames in ``params``)
    no_person       the scene without anyone in it (whole shot; a voice-over plays)
    second_speaker  two people in the frame (whole shot; the second one listens)
    text            burned-in caption (string and box in ``params``)
    blur            Gaussian blur (sigma in px)
    shake           strong camera shake
    dark            under-exposure (gain)
    desync          the sound is ``offset_frames`` early against the picture

Content kinds (``CONTENT_DEFECTS``; not in the default ``DEFECTS``, so existing seeds keep their bytes; each is
a whole shot, its voice-over spoken by the shot's identity unless said otherwise):

    screencast      a desktop: flat-colour windows, lines of small text, a moving cursor, scrolling and typing
    game            a side-scrolling game: flat saturated sky/ground/platforms, a jumping sprite, coins, a HUD
    photo           one still picture of the person, with a Ken-Burns zoom/pan (``params["ken_burns"]``) or none
    synthetic_voice a talking shot whose voice is piper (avatarv's own TTS) instead of the person's: the lips
                    follow the piper speech (the world's people speak with espeak-ng, so piper is the synthetic
                    voice the world can tell apart; ``params["engine"]``)

Near-duplicates (re-encoded, cropped, resized copies of stretches of the video) are written as separate
files, each labelled with its source interval. Intervals are in frames, ``end`` exclusive, at 25 fps.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from avatarv.world.clip import HOP, check_size, offset_audio, talking_segment
from avatarv.world.identity import FPS, sample_identity
from avatarv.world.motion import behaviour_signals
from avatarv.world.render import Renderer
from avatarv.world.scene import render_background, sample_scene
from avatarv.world.seeds import rng
from avatarv.world.speech import SAMPLE_RATE, SENTENCES, speech_track

DEFECTS = ("static", "choppy", "dropped", "no_person", "second_speaker", "text", "blur", "shake", "dark", "desync")
CONTENT_DEFECTS = ("screencast", "game", "photo", "synthetic_voice")
ALL_DEFECTS = DEFECTS + CONTENT_DEFECTS
WHOLE_SHOT = ("no_person", "second_speaker", *CONTENT_DEFECTS)
DUPLICATE_KINDS = ("reencode", "crop", "resize")


@dataclass
class Interval:
    type: str
    start: int
    end: int  # exclusive
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["start_s"], d["end_s"] = self.start / FPS, self.end / FPS
        return d


@dataclass
class Duplicate:
    kind: str
    start: int
    end: int
    frames: np.ndarray
    audio: np.ndarray


@dataclass
class RawFootage:
    frames: np.ndarray  # [T, S, S, 3] uint8
    audio: np.ndarray  # [T · 640] float32
    intervals: list[Interval]
    shots: list[dict]
    n_faces: np.ndarray  # [T] int: people visible
    identity: np.ndarray  # [T] int: the main person's identity (-1 for none)
    landmarks: np.ndarray  # [T, 68, 2] main person (NaN where none)
    mouth_open: np.ndarray  # [T] main person's mouth as shown (0 where none)
    duplicates: list[Duplicate]
    meta: dict

    def save(self, out_dir: str | Path, name: str = "raw") -> Path:
        """``name.mp4`` + ``name.json`` (intervals, shots, duplicates) + ``name.npz`` (per-frame) + copies."""
        from avatarv.media import write_mp4

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        video = write_mp4(out / f"{name}.mp4", self.frames, FPS, self.audio, sample_rate=SAMPLE_RATE)
        dups = []
        for k, d in enumerate(self.duplicates):
            crf = 38 if d.kind == "reencode" else 20
            path = write_mp4(out / f"{name}_dup{k}_{d.kind}.mp4", d.frames, FPS, d.audio, sample_rate=SAMPLE_RATE,
                             crf=crf)
            dups.append({"file": path.name, "kind": d.kind, "source": video.name, "start": d.start, "end": d.end,
                         "size": list(d.frames.shape[1:3])})
        tmp = out / f"{name}.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, n_faces=self.n_faces, identity=self.identity, landmarks=self.landmarks,
                                mouth_open=self.mouth_open)
        os.replace(tmp, out / f"{name}.npz")
        doc = {**self.meta, "video": video.name, "intervals": [i.as_dict() for i in self.intervals],
               "shots": self.shots, "duplicates": dups}
        tmp = out / f"{name}.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, out / f"{name}.json")
        return video


def _sub_interval(r: np.random.Generator, n: int) -> tuple[int, int]:
    length = int(n * r.uniform(0.3, 0.6))
    start = int(r.integers(int(0.1 * n), max(int(0.1 * n) + 1, n - length - int(0.1 * n))))
    return start, start + length


def _caption(frames: np.ndarray, a: int, b: int, text: str, top: bool) -> list[int]:
    size = frames.shape[1]
    scale = size / 400
    thick = max(1, int(round(size / 200)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = max((size - w) // 2, 2)
    y = int(size * 0.12) if top else int(size * 0.92)
    box = [max(x - 4, 0), max(y - h - 4, 0), min(x + w + 4, size), min(y + base + 4, size)]
    for t in range(a, b):
        img = np.ascontiguousarray(frames[t])
        cv2.rectangle(img, (box[0], box[1]), (box[2], box[3]), (20, 20, 20), -1)
        cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
        frames[t] = img
    return box


def _shake_matrices(r: np.random.Generator, n: int, size: int, amp: float) -> np.ndarray:
    ms = np.zeros((n, 2, 3), np.float32)
    for t in range(n):
        ang = r.normal(0, 3.0)
        m = cv2.getRotationMatrix2D((size / 2, size / 2), ang, 1.0 + abs(r.normal(0, 0.03)))
        m[:, 2] += r.normal(0, amp * size, 2)
        ms[t] = m
    return ms


class _Shot:
    """A shot being built: frames, audio and per-frame labels, before it joins the timeline."""

    def __init__(self, frames, audio, n_faces, identity, landmarks, mouth, sentences=()):
        self.frames, self.audio = frames, audio
        self.n_faces, self.identity, self.landmarks, self.mouth = n_faces, identity, landmarks, mouth
        self.sentences = list(sentences)  # what is said, in order (the labels' record of the sound)

    def remap(self, idx: np.ndarray, a: int, b: int) -> None:
        """Frames a..b-1 show the picture of frames idx (static, choppy, dropped)."""
        self.frames[a:b] = self.frames[idx]
        self.landmarks[a:b] = self.landmarks[idx]
        self.mouth[a:b] = self.mouth[idx]


def _talk_shot(ident, scene, n, size, seed, ids) -> _Shot:
    seg = talking_segment(ident, scene, n, size, seed, "raw", ids, noise_seed=seed + ids[-1])
    return _Shot(seg.frames, seg.audio, np.ones(n, np.int64), np.full(n, ident.identity_id),
                 seg.landmarks.copy(), seg.signals.mouth_open.copy(), seg.sentences)


def _no_person_shot(scene, n, size, seed, ids, voice) -> _Shot:
    r = rng(seed, "raw.empty", *ids)
    bg = render_background(scene, size) * np.array(scene.light_colour, np.float32) * scene.exposure
    drift = np.cumsum(r.normal(0, 0.0015 * size, (n, 2)), axis=0)  # a slowly panning camera
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        m = np.float32([[1.03, 0, drift[t, 0] - 0.015 * size], [0, 1.03, drift[t, 1] - 0.015 * size]])
        img = cv2.warpAffine(bg, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        img = img + r.normal(0, scene.noise + 0.004, img.shape).astype(np.float32)
        frames[t] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    audio, said = speech_track(voice, n / FPS, seed, "raw.voiceover", ids)
    return _Shot(frames, audio * 0.7, np.zeros(n, np.int64), np.full(n, -1), np.full((n, 68, 2), np.nan, np.float32),
                 np.zeros(n, np.float32), said)


def _two_people_shot(ident_a, ident_b, scene, n, size, seed, ids) -> _Shot:
    sa = replace(scene, offset_x=-0.2, face_frac=scene.face_frac * 0.72, shake=0.0)
    sb = replace(scene, offset_x=0.22, face_frac=scene.face_frac * 0.66, offset_y=scene.offset_y + 0.04, shake=0.0)
    audio, said = speech_track(ident_a.voice, n / FPS, seed, "raw.two", ids)
    r = rng(seed, "raw.two.motion", *ids)
    sig_a = behaviour_signals(ident_a, sa, audio, n, r)
    sig_b = behaviour_signals(ident_b, sb, audio, n, r, speaking=False)
    ra, rb = Renderer(ident_a, sa, size, noise_seed=seed), Renderer(ident_b, sb, size, noise_seed=seed)
    frames = np.empty((n, size, size, 3), np.uint8)
    lms = np.empty((n, 68, 2), np.float32)
    for t in range(n):
        st_a, st_b = sig_a.state(t), sig_b.state(t)
        canvas, lab_b = rb.render(st_b, finish=False)  # the listener stands behind
        canvas, lab_a = ra.render(st_a, canvas=canvas, finish=False)
        frames[t], lab_a = ra.finish(canvas, lab_a, st_a)
        lms[t] = lab_a.landmarks
    return _Shot(frames, audio, np.full(n, 2), np.full(n, ident_a.identity_id), lms, sig_a.mouth_open.copy(), said)


def _apply_defect(kind: str, shot: _Shot, r: np.random.Generator, size: int) -> tuple[int, int, dict]:
    """Damage ``shot`` in place over a sub-interval; returns (start, end, params) in shot frames."""
    n = len(shot.frames)
    a, b = _sub_interval(r, n)
    if kind == "static":
        shot.remap(np.full(b - a, a), a, b)
        return a, b, {}
    if kind == "choppy":
        k = int(r.integers(2, 5))
        shot.remap(a + (np.arange(b - a) // k) * k, a, b)
        return a, b, {"hold": k}
    if kind == "dropped":
        drops = np.sort(r.choice(np.arange(a + 1, b), size=max((b - a) // 6, 1), replace=False))
        drops = drops[np.concatenate([[True], np.diff(drops) > 1])]  # isolated single drops
        for t in drops:
            shot.remap(np.array([t - 1]), t, t + 1)
        return a, b, {"dropped_frames": [int(t) for t in drops]}  # shot frames; made absolute by make_raw
    if kind == "text":
        words = SENTENCES[int(r.integers(len(SENTENCES)))].split()
        text = " ".join(words[: int(r.integers(2, 5))]).upper().strip(",.!?")
        box = _caption(shot.frames, a, b, text, top=bool(r.random() < 0.3))
        return a, b, {"text": text, "box": box}
    if kind == "blur":
        sigma = float(r.uniform(2.0, 4.0) * size / 256 + 0.5)
        for t in range(a, b):
            shot.frames[t] = cv2.GaussianBlur(shot.frames[t], (0, 0), sigma)
        return a, b, {"sigma_px": sigma}
    if kind == "shake":
        amp = float(r.uniform(0.025, 0.05))
        ms = _shake_matrices(r, b - a, size, amp)
        for k, t in enumerate(range(a, b)):
            shot.frames[t] = cv2.warpAffine(shot.frames[t], ms[k], (size, size), borderMode=cv2.BORDER_REFLECT)
            shot.landmarks[t] = shot.landmarks[t] @ ms[k][:, :2].T + ms[k][:, 2]
        return a, b, {"amplitude": amp}
    if kind == "dark":
        gain = float(r.uniform(0.12, 0.3))
        shot.frames[a:b] = np.clip(shot.frames[a:b].astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
        return a, b, {"gain": gain}
    if kind == "desync":
        k = int(r.choice([-1, 1]) * r.integers(5, 13))
        seg = shot.audio[a * HOP : b * HOP]
        shot.audio[a * HOP : b * HOP] = offset_audio(seg, k)
        return a, b, {"offset_frames": k}
    raise ValueError(f"unknown defect {kind!r}")


def _screencast_frames(r: np.random.Generator, n: int, size: int) -> np.ndarray:
    """[n, S, S, 3] a desktop: flat colours, a window with lines of text, a cursor; it scrolls and types."""
    dark = r.random() < 0.4
    desk = np.array(r.integers(20, 70, 3) if dark else r.integers(150, 230, 3), np.uint8)
    paper = (30, 30, 34) if dark else (250, 250, 250)
    ink = (220, 220, 210) if dark else (25, 25, 25)
    bar = tuple(int(v) for v in r.integers(40, 200, 3))
    x0, y0 = int(size * r.uniform(0.02, 0.1)), int(size * r.uniform(0.04, 0.12))
    x1, y1 = size - int(size * r.uniform(0.02, 0.1)), size - int(size * r.uniform(0.02, 0.08))
    scale = size / 700
    line_h = max(int(size * 0.055), 6)
    words = " ".join(SENTENCES).split()
    lines = [" ".join(words[(k * 5 + j) % len(words)] for j in range(int(r.integers(3, 7)))) for k in range(64)]
    first = int(r.integers(0, 32))
    scroll_every = int(r.integers(12, 30))
    cursor = np.cumsum(r.normal(0, size * 0.01, (n, 2)), axis=0) + [size * 0.6, size * 0.5]
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        img = np.empty((size, size, 3), np.uint8)
        img[:] = desk
        cv2.rectangle(img, (x0, y0), (x1, y1), paper, -1)
        cv2.rectangle(img, (x0, y0), (x1, y0 + line_h), bar, -1)
        top = first + t // scroll_every
        typed = (t % scroll_every) * 2  # the last line is being typed
        nlines = (y1 - y0 - line_h) // line_h - 1
        for k in range(nlines):
            text = lines[(top + k) % len(lines)]
            if k == nlines - 1:
                text = text[:typed]
            cv2.putText(img, text, (x0 + 4, y0 + line_h * (k + 2)), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1,
                        cv2.LINE_AA)
        cx, cy = np.clip(cursor[t], 4, size - 12).astype(int)
        pts = np.array([[cx, cy], [cx, cy + 9 * size // 256 + 4], [cx + 6 * size // 256 + 3, cy + 7 * size // 256 + 3]])
        cv2.fillPoly(img, [pts.astype(np.int32)], (255, 255, 255) if dark else (0, 0, 0))
        frames[t] = img
    return frames


def _game_frames(r: np.random.Generator, n: int, size: int) -> np.ndarray:
    """[n, S, S, 3] a side-scrolling game: flat saturated colours, hard edges, a sprite, coins and a HUD."""
    sky = np.array(r.integers(0, 255, 3), np.uint8)
    sky[int(r.integers(3))] = 255
    ground = np.array(r.integers(0, 255, 3), np.uint8)
    ground[int(r.integers(3))] = 40
    hero = tuple(int(v) for v in r.permutation([255, 60, 0]))
    speed = r.uniform(0.01, 0.03) * size
    gy = int(size * r.uniform(0.72, 0.82))
    blocks = [(float(r.uniform(0, 3 * size)), int(r.integers(size // 10, size // 4)), int(r.integers(size // 8, size // 3)))
              for _ in range(10)]
    score = int(r.integers(0, 5000))
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        img = np.empty((size, size, 3), np.uint8)
        img[:] = sky
        img[gy:] = ground
        off = t * speed
        for k, (bx, w, h) in enumerate(blocks):
            x = int((bx - off) % (3 * size)) - size
            col = (200, 120, 40) if k % 2 else (60, 200, 60)
            cv2.rectangle(img, (x, gy - h), (x + w, gy), col, -1)
            cv2.rectangle(img, (x, gy - h), (x + w, gy), (0, 0, 0), max(1, size // 128))
            cv2.circle(img, (x + w // 2, gy - h - size // 12), max(size // 40, 2), (255, 215, 0), -1)
        jump = abs(np.sin(t * np.pi / 18)) * size * 0.18
        hx, hy = size // 3, int(gy - jump)
        cv2.rectangle(img, (hx, hy - size // 10), (hx + size // 16, hy), hero, -1)
        cv2.circle(img, (hx + size // 32, hy - size // 10 - size // 40), size // 36 + 1, (255, 220, 180), -1)
        cv2.putText(img, f"SCORE {score + 10 * (t // 5):05d}", (size // 40, size // 12), cv2.FONT_HERSHEY_SIMPLEX,
                    size / 600, (255, 255, 255), max(1, size // 200), cv2.LINE_AA)
        cv2.rectangle(img, (size - size // 3, size // 30), (size - size // 30, size // 15), (200, 0, 0), -1)
        frames[t] = img
    return frames


def _photo_frames(ident, scene, n: int, size: int, seed: int, ids, r: np.random.Generator):
    """A still picture of the person (one rendered frame) and a Ken-Burns zoom/pan over it, or no motion."""
    from avatarv.world.clip import render_frames

    audio, said = speech_track(ident.voice, 1.0, seed, "raw.photo.still", ids)
    sig = behaviour_signals(ident, scene, audio, 1, rng(seed, "raw.photo.motion", *ids))
    still, lm, _, _ = render_frames(ident, scene, sig, size, noise_seed=seed + ids[-1])
    ken_burns = bool(r.random() < 0.7)
    z1 = float(r.uniform(1.08, 1.2)) if ken_burns else 1.0
    pan = r.uniform(-0.04, 0.04, 2) * size if ken_burns else np.zeros(2)
    frames = np.empty((n, size, size, 3), np.uint8)
    lms = np.empty((n, 68, 2), np.float32)
    for t in range(n):
        u = t / max(n - 1, 1)
        m = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, 1.0 + (z1 - 1.0) * u)
        m[:, 2] += pan * u
        frames[t] = cv2.warpAffine(still[0], m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lms[t] = lm[0] @ m[:, :2].T + m[:, 2]
    return frames, lms, {"ken_burns": ken_burns, "zoom_end": z1}


def _piper_track(seconds: float, r: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Like ``speech_track`` but spoken by piper (avatarv.voice.synth), deterministic for the same draws."""
    from avatarv.voice.synth import get_synthesiser

    synth = get_synthesiser("piper")
    n = int(round(seconds * SAMPLE_RATE))
    parts = [np.zeros(int(r.uniform(0.1, 0.4) * SAMPLE_RATE), np.float32)]
    used: list[str] = []
    order = r.permutation(len(SENTENCES))
    k = 0
    while sum(len(p) for p in parts) < n:
        text = SENTENCES[int(order[k % len(order)])]
        k += 1
        wav = synth.synthesise(text, length_scale=round(float(r.uniform(0.85, 1.25)), 2))
        wav = wav * np.float32(r.uniform(0.6, 0.9) / max(float(np.max(np.abs(wav))), 1e-6))
        parts += [wav.astype(np.float32), np.zeros(int(r.uniform(0.2, 0.6) * SAMPLE_RATE), np.float32)]
        used.append(text)
    track = np.concatenate(parts)[:n].copy()
    fade = min(int(0.02 * SAMPLE_RATE), n)
    track[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return track, used


def _content_shot(kind: str, ident, scene, n: int, size: int, seed: int, ids) -> tuple[_Shot, dict]:
    """A whole shot of one of ``CONTENT_DEFECTS`` (module docstring) and its label params."""
    r = rng(seed, f"raw.content.{kind}", *ids)
    if kind == "synthetic_voice":
        from avatarv.world.clip import render_frames

        audio, said = _piper_track(n / FPS, r)
        sig = behaviour_signals(ident, scene, audio, n, rng(seed, "raw.synthvoice.motion", *ids))
        frames, lms, _, _ = render_frames(ident, scene, sig, size, noise_seed=seed + ids[-1])
        return _Shot(frames, audio, np.ones(n, np.int64), np.full(n, ident.identity_id), lms,
                     sig.mouth_open.copy(), said), {"engine": "piper"}
    audio, said = speech_track(ident.voice, n / FPS, seed, "raw.voiceover", ids)
    audio = audio * np.float32(0.8)
    if kind == "photo":
        frames, lms, params = _photo_frames(ident, scene, n, size, seed, ids, r)
        return _Shot(frames, audio, np.ones(n, np.int64), np.full(n, ident.identity_id), lms,
                     np.zeros(n, np.float32), said), params
    frames = _screencast_frames(r, n, size) if kind == "screencast" else _game_frames(r, n, size)
    return _Shot(frames, audio, np.zeros(n, np.int64), np.full(n, -1), np.full((n, 68, 2), np.nan, np.float32),
                 np.zeros(n, np.float32), said), {}


def _pick_other(r: np.random.Generator, n: int, previous: int) -> int:
    if n <= 1 or previous < 0:
        return int(r.integers(n))
    return (previous + 1 + int(r.integers(n - 1))) % n


def make_raw(
    seconds: float = 90.0,
    size: int = 256,
    seed: int = 0,
    index: int = 0,
    identities: int = 8,
    scenes: int = 8,
    defects=DEFECTS,
    duplicates=DUPLICATE_KINDS,
) -> RawFootage:
    """One raw video of about ``seconds`` with every kind in ``defects`` at least once if it fits."""
    size = check_size(size)
    r = rng(seed, "raw", index)
    total = int(round(seconds * FPS))
    lengths: list[int] = []
    while sum(lengths) < total:
        lengths.append(int(r.integers(3 * FPS, 7 * FPS)))
    lengths[-1] -= sum(lengths) - total
    if len(lengths) > 1 and lengths[-1] < 2 * FPS:
        lengths[-2] += lengths.pop()
    kinds = list(r.permutation(list(defects))) if defects else []
    plan: list[str | None] = []
    for s in range(len(lengths)):
        # a clean first shot, then defects interleaved with clean shots while any are left
        want = s > 0 and kinds and (len(lengths) - s <= len(kinds) or r.random() < 0.75)
        plan.append(str(kinds.pop(0)) if want else None)

    frames, audios, n_faces, ident_col, lms, mouths = [], [], [], [], [], []
    intervals: list[Interval] = []
    shots: list[dict] = []
    pos = 0
    for s, (n, kind) in enumerate(zip(lengths, plan, strict=True)):
        # a new shot never repeats the previous person or place (a cut must change the picture)
        prev_i, prev_s = (shots[-1]["identity_id"], shots[-1]["scene_id"]) if shots else (-1, -1)
        ident = sample_identity(_pick_other(r, identities, prev_i), seed)
        scene = sample_scene(_pick_other(r, scenes, prev_s), seed)
        ids = (index, s)
        if kind == "no_person":
            shot = _no_person_shot(scene, n, size, seed, ids, ident.voice)
        elif kind in CONTENT_DEFECTS:
            shot, content_params = _content_shot(kind, ident, scene, n, size, seed, ids)
        elif kind == "second_speaker":
            other = (ident.identity_id + 1 + int(r.integers(identities - 1))) % identities if identities > 1 else 0
            shot = _two_people_shot(ident, sample_identity(other, seed), scene, n, size, seed, ids)
        else:
            shot = _talk_shot(ident, scene, n, size, seed, ids)
        if kind in WHOLE_SHOT:
            a, b, params = 0, n, (content_params if kind in CONTENT_DEFECTS else {})
        elif kind is not None:
            a, b, params = _apply_defect(kind, shot, r, size)
        # join: cut, or fade through black / dissolve over 8..16 frames
        if s > 0:
            trans = "cut" if r.random() < 0.6 else ("fade" if r.random() < 0.5 else "dissolve")
            if trans == "cut":
                intervals.append(Interval("cut", pos, pos + 1))
            else:
                f = int(r.integers(8, 17))
                half = f // 2
                prev_f, prev_a = frames[-1], audios[-1]
                if trans == "fade":
                    ramp = np.linspace(1.0, 0.0, half + 1)[1:].astype(np.float32)
                    prev_f[-half:] = (prev_f[-half:] * ramp[:, None, None, None]).astype(np.uint8)
                    shot.frames[:half] = (shot.frames[:half] * ramp[::-1][:, None, None, None]).astype(np.uint8)
                    intervals.append(Interval("fade", pos - half, pos + half, {"kind": "through_black"}))
                else:  # dissolve: the last f frames of the previous shot blend into the first f of this one
                    w = np.linspace(0.0, 1.0, f + 2)[1:-1].astype(np.float32)[:, None, None, None]
                    mix = prev_f[-f:] * (1 - w) + shot.frames[:f] * w
                    shot.frames[:f] = np.clip(mix + 0.5, 0, 255).astype(np.uint8)
                    frames[-1] = prev_f[:-f]
                    wa = np.linspace(0.0, 1.0, f * HOP, dtype=np.float32)
                    shot.audio[: f * HOP] = prev_a[-f * HOP :] * (1 - wa) + shot.audio[: f * HOP] * wa
                    audios[-1] = prev_a[: -f * HOP]
                    for arr in (n_faces, ident_col, lms, mouths):
                        arr[-1] = arr[-1][:-f]
                    shots[-1]["end"] -= f
                    pos -= f
                    for iv in intervals:
                        iv.end = min(iv.end, pos)
                    intervals.append(Interval("dissolve", pos, pos + f))
        if kind is not None:
            if "dropped_frames" in params:
                params["dropped_frames"] = [pos + t for t in params["dropped_frames"]]
            intervals.append(Interval(kind, pos + a, pos + b, params))
        shown = kind not in ("no_person", "screencast", "game")
        shots.append({"start": pos, "end": pos + n, "identity_id": ident.identity_id if shown else -1,
                      "scene_id": scene.scene_id, "defect": kind, "speaker_id": ident.identity_id,
                      "sentences": shot.sentences})
        frames.append(shot.frames)
        audios.append(shot.audio)
        n_faces.append(shot.n_faces)
        ident_col.append(shot.identity)
        lms.append(shot.landmarks)
        mouths.append(shot.mouth)
        pos += n
    video = np.concatenate(frames)
    audio = np.concatenate(audios)
    # near-duplicates of clean stretches
    dups = []
    clean = [sh for sh in shots if sh["defect"] is None and sh["end"] - sh["start"] >= 2 * FPS]
    for k, kind in enumerate(duplicates):
        if not clean:
            break
        sh = clean[k % len(clean)]
        a = sh["start"] + int(r.integers(0, max(sh["end"] - sh["start"] - 2 * FPS, 0) + 1))
        b = min(a + int(r.integers(2 * FPS, 3 * FPS)), sh["end"])
        dups.append(_duplicate(kind, video[a:b], audio[a * HOP : b * HOP], a, b, r))
    meta = {"seed": seed, "index": index, "size": size, "fps": FPS, "sample_rate": SAMPLE_RATE,
            "n_frames": int(len(video)), "defect_types": sorted({*DEFECTS, *defects}, key=list(ALL_DEFECTS).index)}
    return RawFootage(video, audio, sorted(intervals, key=lambda i: (i.start, i.type)), shots,
                      np.concatenate(n_faces), np.concatenate(ident_col), np.concatenate(lms),
                      np.concatenate(mouths), dups, meta)


def _duplicate(kind: str, frames: np.ndarray, audio: np.ndarray, a: int, b: int, r) -> Duplicate:
    size = frames.shape[1]
    if kind == "crop":
        c = int(size * r.uniform(0.75, 0.9)) // 2 * 2
        o = (size - c) // 2
        frames = np.stack([cv2.resize(f[o : o + c, o : o + c], (size, size), interpolation=cv2.INTER_AREA)
                           for f in frames])
    elif kind == "resize":
        s2 = max(int(size * r.uniform(0.5, 0.75)) // 2 * 2, 32)
        frames = np.stack([cv2.resize(f, (s2, s2), interpolation=cv2.INTER_AREA) for f in frames])
    else:
        frames = frames.copy()
    return Duplicate(kind, a, b, frames, audio.copy())
