"""Behaviour → per-frame signals: head pose, mouth, blinks, smiles, brows, gaze, shrugs, camera shake.

The mouth follows the speech envelope through the identity's gain, ``mouth_lag_frames`` later:
``mouth_open[t] = clip(0.75 · gain · env[t - lag], 0, 1)`` (env smoothed by a symmetric 3-tap filter,
which moves no peak), so lip sync is exact by construction. Stressed syllables (envelope peaks) trigger
brow raises (with the identity's probability) and small nods. Blinks, look-aways and shrugs are Poisson
events at the identity's rates; smiles are a two-state Markov chain spending ``smile_habit`` of the time
smiling. Idle head motion is a sum of the identity's oscillations and smooth noise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from avatarv.world.audio_features import brightness, envelope, stress_events
from avatarv.world.geometry import Expression
from avatarv.world.identity import FPS, Identity
from avatarv.world.render import FrameState
from avatarv.world.scene import Scene


@dataclass
class Signals:
    """Per-frame behaviour, each [T] float32."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    mouth_open: np.ndarray
    mouth_round: np.ndarray
    smile: np.ndarray
    blink: np.ndarray  # lid closure 0 open … 1 closed
    brow_raise: np.ndarray  # face units
    gaze_x: np.ndarray
    gaze_y: np.ndarray
    shrug: np.ndarray
    shake_x: np.ndarray
    shake_y: np.ndarray
    shake_rot: np.ndarray
    envelope: np.ndarray  # the audio envelope the mouth follows (before any injected desync)

    def __len__(self) -> int:
        return len(self.yaw)

    def state(self, t: int) -> FrameState:
        return FrameState(
            yaw=float(self.yaw[t]),
            pitch=float(self.pitch[t]),
            roll=float(self.roll[t]),
            expression=Expression(
                mouth_open=float(self.mouth_open[t]),
                mouth_round=float(self.mouth_round[t]),
                smile=float(self.smile[t]),
                blink=float(self.blink[t]),
                brow_raise=float(self.brow_raise[t]),
                gaze_x=float(self.gaze_x[t]),
                gaze_y=float(self.gaze_y[t]),
            ),
            shrug=float(self.shrug[t]),
            shake=(float(self.shake_x[t]), float(self.shake_y[t]), float(self.shake_rot[t])),
            noise_index=t,
        )

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def smooth_noise(r: np.random.Generator, n: int, width_frames: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    if n == 0:
        return np.zeros(0, np.float32)
    pad = int(3 * width_frames) + 1
    x = r.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / max(width_frames, 1e-3)) ** 2)
    y = np.convolve(x, k / k.sum(), mode="same")[pad : pad + n]
    sd = y.std()
    return (y / sd if sd > 0 else y).astype(np.float32)


def poisson_events(r: np.random.Generator, n: int, rate_per_min: float, refractory: int) -> np.ndarray:
    """Event frames of a Poisson process (rate per minute) with a refractory period in frames."""
    p = rate_per_min / 60.0 / FPS
    events: list[int] = []
    last = -(10**9)
    draws = r.random(n)
    for t in range(n):
        if t - last >= refractory and draws[t] < p:
            events.append(t)
            last = t
    return np.array(events, np.int64)


def bumps(n: int, starts, length: int, heights=1.0) -> np.ndarray:
    """Sum of Hann windows of ``length`` frames starting at ``starts`` (max-combined, not added)."""
    out = np.zeros(n, np.float32)
    if length < 1:
        return out
    w = np.hanning(length + 2)[1:-1].astype(np.float32)
    h = np.broadcast_to(np.asarray(heights, np.float32), (len(starts),))
    for s0, hk in zip(starts, h, strict=True):
        a, b = max(int(s0), 0), min(int(s0) + length, n)
        if b > a:
            out[a:b] = np.maximum(out[a:b], hk * w[a - int(s0) : b - int(s0)])
    return out


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    """y[t] = x[t - lag] (zeros shifted in)."""
    y = np.zeros_like(x)
    if lag == 0:
        return x.copy()
    if lag > 0:
        y[lag:] = x[:-lag]
    else:
        y[:lag] = x[-lag:]
    return y


def _blinks(r, n: int, rate: float, duration: float) -> np.ndarray:
    length = max(int(round(duration * FPS)), 2)
    starts = poisson_events(r, n, rate, refractory=length + 5)
    out = np.zeros(n, np.float32)
    # close fast (40 %), open slower (60 %); every blink, however short, has a fully shut frame
    close = max(int(round(length * 0.4)), 1)
    opening = length - close
    prof = np.concatenate([np.linspace(1.0 / close, 1.0, close), np.linspace(1.0, 0.0, opening + 2)[1:-1]])
    for s0 in starts:
        b = min(s0 + length, n)
        out[s0:b] = np.maximum(out[s0:b], prof[: b - s0])
    return out


def _smiles(r, n: int, habit: float, strength: float) -> np.ndarray:
    """Two-state Markov chain: mean smile episode 3 s; the stationary smiling fraction is ``habit``."""
    if habit <= 0:
        return np.zeros(n, np.float32)
    leave = 1.0 / (3.0 * FPS)
    enter = leave * habit / max(1.0 - habit, 1e-3)
    state = r.random() < habit
    draws = r.random(n)
    s = np.zeros(n, np.float32)
    for t in range(n):
        s[t] = state
        state = (draws[t] >= leave) if state else (draws[t] < enter)
    k = np.hanning(9)[1:-1]
    return (np.convolve(s, k / k.sum(), mode="same") * strength).astype(np.float32)


def behaviour_signals(identity: Identity, scene: Scene, audio: np.ndarray, n_frames: int, r: np.random.Generator,
                      speaking: bool = True) -> Signals:
    """Per-frame signals of ``identity`` in ``scene`` while ``audio`` (their own speech) plays."""
    b = identity.behaviour
    n = n_frames
    t = np.arange(n, dtype=np.float32) / FPS
    env = envelope(audio, n)
    bright = brightness(audio, n)
    env_s = np.convolve(np.pad(env, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid").astype(np.float32)
    lag = b.mouth_lag_frames
    mouth = np.clip(0.75 * b.mouth_gain * _shift(env_s, lag), 0.0, 1.0) if speaking else np.zeros(n, np.float32)
    rounding = np.clip(1.2 - 1.6 * _shift(bright, lag), 0.0, 1.0) * (mouth > 0.05)
    stress = stress_events(env) if speaking else np.zeros(0, np.int64)

    raise_on = stress[r.random(len(stress)) < b.brow_raise_prob]
    brow = bumps(n, raise_on - 2, int(0.45 * FPS), b.brow_raise_amp)
    nod_dip = bumps(n, stress - 2, int(0.35 * FPS), b.stress_nod)

    ph = r.uniform(0, 2 * np.pi, 4)
    pitch = (
        b.nod_amp * (0.8 * np.sin(2 * np.pi * b.nod_freq * t + ph[0]) + 0.3 * smooth_noise(r, n, 8))
        + nod_dip
        - 1.0
    )
    yaw = b.sway_amp * (0.8 * np.sin(2 * np.pi * b.sway_freq * t + ph[1]) + 0.35 * smooth_noise(r, n, 15))
    roll = b.roll_amp * (0.7 * np.sin(2 * np.pi * b.sway_freq * 0.7 * t + ph[2]) + 0.4 * smooth_noise(r, n, 12))

    blink = _blinks(r, n, b.blink_rate, b.blink_duration)
    smile = _smiles(r, n, b.smile_habit, b.smile_strength)

    aversions = poisson_events(r, n, b.gaze_aversion_rate, refractory=int(1.5 * FPS))
    away = bumps(n, aversions, int(r.uniform(0.6, 1.4) * FPS), r.uniform(0.5, 0.9, len(aversions)))
    ang = b.gaze_direction + 0.4 * smooth_noise(r, n, 20)
    gaze_x = np.clip(away * np.cos(ang) + b.gaze_jitter * 3 * smooth_noise(r, n, 3), -1, 1)
    gaze_y = np.clip(away * np.sin(ang) + b.gaze_jitter * 2 * smooth_noise(r, n, 3), -1, 1)

    shrugs = poisson_events(r, n, b.shrug_rate, refractory=int(2 * FPS))
    shrug = bumps(n, shrugs, int(0.7 * FPS), 1.0)

    amp = scene.shake
    shake_x = amp * smooth_noise(r, n, 1.5) if amp else np.zeros(n, np.float32)
    shake_y = amp * smooth_noise(r, n, 1.5) if amp else np.zeros(n, np.float32)
    shake_rot = amp * 40 * smooth_noise(r, n, 2) if amp else np.zeros(n, np.float32)
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return Signals(
        yaw=f32(yaw), pitch=f32(pitch), roll=f32(roll), mouth_open=f32(mouth), mouth_round=f32(rounding),
        smile=f32(smile), blink=f32(blink), brow_raise=f32(brow), gaze_x=f32(gaze_x), gaze_y=f32(gaze_y),
        shrug=f32(shrug), shake_x=f32(shake_x), shake_y=f32(shake_y), shake_rot=f32(shake_rot), envelope=f32(env),
    )
