"""A clip: one identity talking in one scene, with its speech and per-frame labels.

    from avatarv.world import make_clip
    clip = make_clip(identity_id=3, scene_id=1, seconds=4.0, size=128, seed=0)
    clip.frames  # [100, 128, 128, 3] uint8 RGB, 25 fps
    clip.audio   # [64000] float32, 16 kHz mono
    clip.labels  # ClipLabels: landmarks, pose, mouth_open, blink, … and meta (traits, ids, offset)
    clip.save("out/clip.mp4")  # + out/clip.npz + out/clip.json

Everything is a pure function of the arguments: the same call gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarv.errors import ConfigError
from avatarv.world.identity import FPS, Identity, sample_identity
from avatarv.world.labels import ClipLabels, box_of
from avatarv.world.motion import Signals, behaviour_signals
from avatarv.world.render import Renderer
from avatarv.world.scene import Scene, sample_scene
from avatarv.world.seeds import rng
from avatarv.world.speech import SAMPLE_RATE, espeak_available, speech_track

HOP = SAMPLE_RATE // FPS  # audio samples per video frame


@dataclass
class Clip:
    frames: np.ndarray  # [T, S, S, 3] uint8
    audio: np.ndarray  # [T · 640] float32, as written (with any injected offset)
    labels: ClipLabels

    @property
    def meta(self) -> dict:
        return self.labels.meta

    def save(self, path: str | Path, crf: int = 20) -> Path:
        """Write ``path`` (mp4, h264 + AAC) and the labels beside it (same stem, .npz and .json)."""
        from avatarv.media import write_mp4

        path = Path(path)
        write_mp4(path, self.frames, FPS, self.audio, sample_rate=SAMPLE_RATE, crf=crf)
        self.labels.save(path.with_suffix(""))
        return path


def check_size(size: int) -> int:
    if not (64 <= int(size) <= 512) or int(size) % 2:
        raise ConfigError(f"frame size {size} px: expected an even number between 64 and 512")
    return int(size)


def offset_audio(audio: np.ndarray, offset_frames: int) -> np.ndarray:
    """Desync: the written track is ``audio`` advanced by ``offset_frames`` (positive = sound early), same length.

    The mouth then follows the written sound ``mouth_lag + offset_frames`` frames later."""
    k = int(offset_frames) * HOP
    out = np.zeros_like(audio)
    if k >= 0:
        out[: len(audio) - k] = audio[k:]
    else:
        out[-k:] = audio[: len(audio) + k]
    return out


def render_frames(identity: Identity, scene: Scene, signals: Signals, size: int, noise_seed: int = 0):
    """Frames [T, S, S, 3] and per-frame geometric labels for given signals."""
    renderer = Renderer(identity, scene, size, noise_seed=noise_seed)
    n = len(signals)
    frames = np.empty((n, size, size, 3), np.uint8)
    lms = np.empty((n, 68, 2), np.float32)
    iris = np.empty((n, 2, 2), np.float32)
    head = np.empty((n, 4), np.float32)
    for t in range(n):
        frames[t], lab = renderer.render(signals.state(t))
        lms[t], iris[t], head[t] = lab.landmarks, lab.iris, lab.head_box
    return frames, lms, iris, head


def build_labels(signals: Signals, lms, iris, head, size: int, meta: dict, present: bool = True) -> ClipLabels:
    inside = ((lms >= 0) & (lms <= size - 1)).all(axis=(1, 2))
    n = len(signals)
    return ClipLabels(
        landmarks=lms,
        iris=iris,
        face_box=box_of(lms),
        head_box=head,
        pose=np.stack([signals.yaw, signals.pitch, signals.roll], axis=1).astype(np.float32),
        mouth_open=signals.mouth_open,
        mouth_round=signals.mouth_round,
        smile=signals.smile,
        blink=signals.blink,
        blink_closed=signals.blink >= 0.5,
        brow_raise=signals.brow_raise,
        gaze=np.stack([signals.gaze_x, signals.gaze_y], axis=1).astype(np.float32),
        shrug=signals.shrug,
        visible=inside & present if present else np.zeros(n, bool),
        speaking=signals.envelope > 0.15,
        audio_envelope=signals.envelope,
        meta=meta,
    )


@dataclass
class Segment:
    """One identity talking in one scene: speech, behaviour signals, frames and geometric labels."""

    identity: Identity
    scene: Scene
    audio: np.ndarray
    sentences: list[str]
    signals: Signals
    frames: np.ndarray
    landmarks: np.ndarray
    iris: np.ndarray
    head_box: np.ndarray


def talking_segment(identity: Identity, scene: Scene, n_frames: int, size: int, seed: int, stream: str, ids,
                    engine: str = "auto", noise_seed: int = 0) -> Segment:
    speech, sentences = speech_track(identity.voice, n_frames / FPS, seed, stream, ids, engine=engine)
    signals = behaviour_signals(identity, scene, speech, n_frames, rng(seed, stream + ".motion", *ids))
    frames, lms, iris, head = render_frames(identity, scene, signals, size, noise_seed=noise_seed)
    return Segment(identity, scene, speech, sentences, signals, frames, lms, iris, head)


def make_clip(
    identity_id: int,
    scene_id: int,
    seconds: float = 4.0,
    size: int = 128,
    seed: int = 0,
    clip_index: int = 0,
    audio_offset_frames: int = 0,
    engine: str = "auto",
) -> Clip:
    """Identity ``identity_id`` talking in scene ``scene_id`` for ``seconds`` (rounded to whole frames)."""
    size = check_size(size)
    if seconds <= 0:
        raise ConfigError(f"clip length {seconds} s: expected a positive number of seconds")
    identity = sample_identity(identity_id, seed)
    scene = sample_scene(scene_id, seed)
    n = max(int(round(seconds * FPS)), 1)
    ids = (identity_id, scene_id, clip_index)
    seg = talking_segment(identity, scene, n, size, seed, "clip", ids, engine, noise_seed=seed + 7919 * clip_index)
    used_engine = "espeak-ng" if engine == "espeak" or (engine == "auto" and espeak_available()) else "formant"
    meta = {
        "identity_id": int(identity_id),
        "scene_id": int(scene_id),
        "clip_index": int(clip_index),
        "seed": int(seed),
        "fps": FPS,
        "size": size,
        "n_frames": n,
        "sample_rate": SAMPLE_RATE,
        "audio_offset_frames": int(audio_offset_frames),
        "mouth_lag_frames": identity.behaviour.mouth_lag_frames,
        "sentences": seg.sentences,
        "speech_engine": used_engine,
        "identity": identity.traits(),
        "scene": scene.traits(),
    }
    labels = build_labels(seg.signals, seg.landmarks, seg.iris, seg.head_box, size, meta)
    audio = offset_audio(seg.audio, audio_offset_frames) if audio_offset_frames else seg.audio
    return Clip(frames=seg.frames, audio=audio, labels=labels)
