"""Behaviour signals: events at the identity's rates, blinks that shut the lid, smiles at the habit's rate."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.world.motion import _blinks, _smiles, bumps, poisson_events, smooth_noise


@pytest.mark.parametrize("duration", [0.08, 0.12, 0.2, 0.32])
def test_every_blink_shuts_the_lid(duration):
    b = _blinks(np.random.default_rng(0), 5000, 30.0, duration)
    nz = b > 0
    starts = np.nonzero(nz & ~np.r_[False, nz[:-1]])[0]
    ends = np.nonzero(nz & ~np.r_[nz[1:], False])[0]
    assert len(starts) > 20
    for a, e in zip(starts, ends, strict=True):
        assert b[a : e + 1].max() == pytest.approx(1.0)
    # one closed (>= 0.5) stretch per blink: the labels count blinks exactly
    closed = (b >= 0.5).astype(int)
    assert (np.diff(closed) == 1).sum() + closed[0] == len(starts)


def test_event_rates():
    r = np.random.default_rng(1)
    n = 25 * 600  # ten minutes
    ev = poisson_events(r, n, 12.0, refractory=10)
    assert 90 < len(ev) < 150
    assert np.diff(ev).min() >= 10
    s = _smiles(r, n, 0.4, 1.0)
    assert 0.3 < (s > 0.5).mean() < 0.5
    x = smooth_noise(r, 1000, 5.0)
    assert x.std() == pytest.approx(1.0, abs=1e-5) and np.abs(np.diff(x)).mean() < 0.5
    assert bumps(10, [2], 4).max() <= 1.0 and bumps(10, [2], 4)[0] == 0.0
