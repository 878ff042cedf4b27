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
