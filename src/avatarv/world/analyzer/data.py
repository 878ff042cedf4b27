"""Training and test data for the analyzer: world frames with random poses and expressions, and labels.

Each sample is one frame of a random (identity, scene) pair at a random size (128–256 px) with a random
head pose and expression (blinks, smiles, mouth shapes, gaze), camera shake and sensor noise. Stored as
the two network inputs (the 64² frame and a jittered 96² face crop) with targets in network units.
Training uses identities and scenes from one id range, tests from another, so test faces and rooms are
never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarv.analyzer.crops import crop, crop_square, to_crop
from avatarv.analyzer.model import BOX_INPUT, POSE_SCALE, SIGNALS
from avatarv.world.geometry import Expression
from avatarv.world.identity import sample_identity
from avatarv.world.labels import box_of
from avatarv.world.render import FrameState, Renderer
from avatarv.world.scene import sample_scene
from avatarv.world.seeds import rng

SIZES = (96, 128, 128, 160, 192, 256)


@dataclass
class Samples:
    small: np.ndarray  # [N, 64, 64, 3] uint8 whole frames
    box: np.ndarray  # [N, 4] landmark box / frame size
    crops: np.ndarray  # [N, 96, 96, 3] uint8 jittered face crops
    squares: np.ndarray  # [N, 3] crop (cx, cy, side) in frame px
    landmarks: np.ndarray  # [N, 68, 2] frame px
    signals: np.ndarray  # [N, len(SIGNALS)] targets in network units (pose / 10°)
    sizes: np.ndarray  # [N] frame size
    frames: list | None = None  # the full frames (kept for test sets only)


def random_state(r: np.random.Generator, shake: float) -> FrameState:
    u = r.uniform
    blink = 0.0 if r.random() < 0.55 else (1.0 if r.random() < 0.4 else float(u(0, 1)))
    look = r.random() < 0.4
    return FrameState(
        yaw=float(u(-12, 12)), pitch=float(u(-10, 10)), roll=float(u(-8, 8)),
        expression=Expression(
            mouth_open=0.0 if r.random() < 0.3 else float(u(0, 1)),
            mouth_round=float(u(0, 1)) * (r.random() < 0.5),
            smile=0.0 if r.random() < 0.5 else float(u(0, 1)),
            blink=blink,
            brow_raise=float(u(0, 0.12)) * (r.random() < 0.3),
            gaze_x=float(u(-1, 1)) if look else float(u(-0.15, 0.15)),
            gaze_y=float(u(-0.7, 0.7)) if look else float(u(-0.1, 0.1)),
        ),
        shrug=float(u(0, 1)) * (r.random() < 0.2),
        shake=(float(r.normal(0, shake)), float(r.normal(0, shake)), float(r.normal(0, shake * 40))),
        noise_index=int(r.integers(8)),
    )


def targets(state: FrameState) -> np.ndarray:
    e = state.expression
    return np.array([state.yaw / POSE_SCALE, state.pitch / POSE_SCALE, state.roll / POSE_SCALE, e.mouth_open,
                     e.blink, e.smile, e.gaze_x, e.gaze_y], np.float32)


def make_samples(n_pairs: int, per_pair: int, seed: int, id_base: int, scene_base: int, jitter: bool = True,
                 keep_frames: bool = False, progress=None) -> Samples:
    r = rng(seed, "analyzer.data", id_base, scene_base)
    out = {k: [] for k in ("small", "box", "crops", "squares", "landmarks", "signals", "sizes")}
    frames = []
    for p in range(n_pairs):
        size = int(SIZES[int(r.integers(len(SIZES)))])
        ident = sample_identity(id_base + int(r.integers(100_000)), seed)
        scene = sample_scene(scene_base + int(r.integers(10_000)), seed)
        renderer = Renderer(ident, scene, size, noise_seed=p)
        for _ in range(per_pair):
            st = random_state(r, shake=float(r.uniform(0, 0.01)) * (r.random() < 0.3))
            frame, lab = renderer.render(st)
            box = box_of(lab.landmarks)
            sq = crop_square(box)
            if jitter:
                sq = sq * np.array([1, 1, r.uniform(0.88, 1.12)], np.float32) + np.array(
                    [*r.normal(0, 0.05 * sq[2], 2), 0], np.float32)
            out["small"].append(cv2.resize(frame, (BOX_INPUT, BOX_INPUT), interpolation=cv2.INTER_AREA))
            out["box"].append((box + 0.5) / size)
            out["crops"].append(crop(frame, sq))
            out["squares"].append(sq)
            out["landmarks"].append(lab.landmarks)
            out["signals"].append(targets(st))
            out["sizes"].append(size)
            if keep_frames:
                frames.append(frame)
        if progress is not None:
            progress(p)
    return Samples(**{k: np.stack(v) for k, v in out.items()}, frames=frames if keep_frames else None)


__all__ = ["SIGNALS", "Samples", "make_samples", "random_state", "targets", "to_crop"]
