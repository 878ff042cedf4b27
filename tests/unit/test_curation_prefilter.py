"""Static detection by look-back: codec-like noise on a frozen picture is still, slow accumulating motion is not."""

from __future__ import annotations

import numpy as np

from avatarv.data.curation.stages.prefilter import still_frames


def _consecutive(grey: np.ndarray) -> np.ndarray:
    diff = np.zeros(len(grey), np.float32)
    diff[1:] = np.abs(np.diff(grey, axis=0)).mean((1, 2)) / (grey[1:].std((1, 2)) + 1.0)
    return diff


def test_frozen_picture_with_periodic_noise_is_still_but_slow_drift_is_not():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 255, (64, 64)).astype(np.float32)
    noise = [rng.normal(0, 0.05, (64, 64)).astype(np.float32) for _ in range(4)]
    frozen = np.stack([base + noise[t % 4] for t in range(30)])  # GOP-like noise that does not accumulate
    still = still_frames(frozen, _consecutive(frozen), threshold=2e-3, max_lag=8)
    assert still[1:].all()

    drift = np.stack([base + t * 0.1 * np.sign(base - 128) for t in range(30)])  # contrast grows slowly
    d = _consecutive(drift)
    assert (d[1:] < 2e-3).all()  # every consecutive difference alone looks still ...
    still = still_frames(drift, d, threshold=2e-3, max_lag=8)
    assert still.sum() < 8  # ... but the look-back sees the motion accumulate


def _held(diffs_moving: np.ndarray, held: float, hold: int) -> np.ndarray:
    """A rel_diff sequence of frames each shown ``hold`` times: one moving difference, then ``hold - 1`` held."""
    out = []
    for d in diffs_moving:
        out += [float(d)] + [held] * (hold - 1)
    return np.asarray(out, np.float32)


def test_alternation_finds_frames_held_twice_above_the_repeat_floor():
    from avatarv.data.curation.stages.prefilter import alternating

    rng = np.random.default_rng(0)
    moving = rng.uniform(0.04, 0.09, 40)
    # a dark shot: held frames differ by ~1e-2 (codec noise on a noisy picture), above repeat_abs = 8e-3
    held = _held(moving, 0.0, 2) + np.tile([0.0, 1.0], 40).astype(np.float32) * rng.uniform(0.009, 0.013, 80)
    assert alternating(held, 26, -0.6, 0.3, 0.012)[13:-13].all()
    smooth = np.convolve(rng.uniform(0.01, 0.09, 100), np.ones(5) / 5, mode="same").astype(np.float32)
    assert not alternating(smooth, 26, -0.6, 0.3, 0.012).any()  # natural motion is smooth, not alternating
    dropped = np.where(np.arange(100) % 6 == 5, 0.001, smooth).astype(np.float32)  # one repeat in six
    assert not alternating(dropped, 26, -0.6, 0.3, 0.012).any()


def test_prefilter_choppy_in_a_dark_shot_and_not_at_the_start_of_a_blur(monkeypatch):
    """The whole stage on frames: held-twice frames of a noisy dark picture are choppy; a picture that goes
    soft (small differences after large ones) is not called choppy on the way in."""
    from pathlib import Path

    import cv2

    from avatarv.data.curation.stage import Item
    from avatarv.data.curation.stages import prefilter
    from avatarv.media.read import Video

    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (96, 96, 3)).astype(np.float32), (0, 0), 2)

    def frame(t: float, gain: float = 1.0, noise: float = 0.0, blur: float = 0.0) -> np.ndarray:
        m = np.float32([[1, 0, 3 * np.sin(t / 3)], [0, 1, 2 * np.cos(t / 4)]])
        f = cv2.warpAffine(base, m, (96, 96), borderMode=cv2.BORDER_REFLECT) * gain
        if blur:
            f = cv2.GaussianBlur(f, (0, 0), blur)
        return np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)

    dark = [frame(t // 2 * 2, gain=0.5, noise=0.5) for t in range(75)]  # each picture held twice, noisy
    soft = [frame(t) for t in range(50)] + [frame(50 + t * 0.05, blur=3.0) for t in range(50)]
    for frames, want in ((dark, True), (soft, False)):
        video = Video(np.stack(frames), 25.0, None, 16000, Path("synthetic.mp4"))
        monkeypatch.setattr(prefilter, "load_video", lambda item, v=video: v)
        out = prefilter.Prefilter().process(Item("synthetic.mp4", Path("synthetic.mp4"), "0"))
        choppy = np.asarray(out.arrays["choppy"])
        if want:
            assert choppy[13:-13].mean() > 0.9, choppy.mean()
        else:
            assert choppy.sum() == 0, np.flatnonzero(choppy)



def test_a_found_freeze_grows_back_over_its_refining_first_frames():
    from avatarv.data.curation.stages.prefilter import extend_back

    diff = np.array([0.03, 0.02, 0.03, 0.0015, 0.0012, 0.001, 0.0005, 0.0002, 0.0001, 0.0001, 0.02], np.float32)
    still = np.zeros(11, bool)
    still[7:10] = True  # the look-back confirmed the freeze only from frame 7
    grown = extend_back(still, diff, threshold=2e-3, max_frames=8)
    assert np.flatnonzero(grown).tolist() == [2, 3, 4, 5, 6, 7, 8, 9]  # frame 2 == frame 3 up to 1.5e-3
    assert np.flatnonzero(extend_back(still, diff, 2e-3, max_frames=2)).tolist() == [5, 6, 7, 8, 9]
    assert not extend_back(np.zeros(11, bool), diff, 2e-3, 8).any()
