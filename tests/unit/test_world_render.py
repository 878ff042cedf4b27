"""Rendering: deterministic, any size 64..512, labels on the drawn features."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.world import sample_identity, sample_scene
from avatarv.world.geometry import Expression
from avatarv.world.paint import Painter, catmull_rom, ribbon
from avatarv.world.render import FrameState, Renderer


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_render_sizes_and_labels(size):
    r = Renderer(sample_identity(2, 0), sample_scene(1, 0), size)
    frame, lab = r.render(FrameState(yaw=5, pitch=-3, roll=2, expression=Expression(mouth_open=0.5)))
    assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    assert lab.landmarks.shape == (68, 2)
    assert (lab.landmarks >= 0).all() and (lab.landmarks < size).all()
    # landmark positions scale with the frame size (same framing at every size)
    r2 = Renderer(sample_identity(2, 0), sample_scene(1, 0), 128)
    _, lab2 = r2.render(FrameState(yaw=5, pitch=-3, roll=2, expression=Expression(mouth_open=0.5)))
    np.testing.assert_allclose((lab.landmarks + 0.5) / size, (lab2.landmarks + 0.5) / 128, atol=1e-4)


def test_render_deterministic():
    st = FrameState(yaw=3, expression=Expression(smile=0.5, mouth_open=0.3), shake=(0.01, -0.005, 0.5), noise_index=3)
    a, la = Renderer(sample_identity(5, 1), sample_scene(3, 1), 128).render(st)
    b, lb = Renderer(sample_identity(5, 1), sample_scene(3, 1), 128).render(st)
    assert a.tobytes() == b.tobytes()
    assert la.landmarks.tobytes() == lb.landmarks.tobytes()


def test_features_are_drawn_where_labelled():
    """Pupils are dark at the iris labels; the open mouth is dark between the inner lips."""
    r = Renderer(sample_identity(0, 0), sample_scene(0, 0), 256)
    frame, lab = r.render(FrameState(expression=Expression(mouth_open=0.8)))
    gray = frame.astype(np.float32).mean(-1)
    for x, y in lab.iris:
        assert gray[int(round(y)), int(round(x))] < 80
    mid = (lab.landmarks[62] + lab.landmarks[66]) / 2
    below = lab.landmarks[66] + (lab.landmarks[66] - lab.landmarks[62]) * 0.0
    assert gray[int(round(mid[1])), int(round(mid[0]))] < gray[int(round(below[1])) + 12, int(round(below[0]))]


def test_shake_moves_labels_with_pixels():
    ident, scene = sample_identity(1, 0), sample_scene(2, 0)
    r = Renderer(ident, scene, 128)
    _, still = r.render(FrameState())
    _, moved = r.render(FrameState(shake=(0.05, 0.0, 0.0)))
    np.testing.assert_allclose(moved.landmarks[:, 0] - still.landmarks[:, 0], 6.4, atol=1e-3)


def test_painter_antialiased_coverage():
    canvas = np.zeros((20, 20, 3), np.float32)
    pa = Painter(canvas)
    square = np.array([[5, 5], [15.5, 5], [15.5, 15], [5, 15]], np.float32)
    pa.fill([square], (1.0, 1.0, 1.0))
    assert canvas[10, 10, 0] == pytest.approx(1.0)
    assert 0.2 < canvas[10, 15, 0] < 0.8  # half-covered column
    assert canvas[2, 2, 0] == 0.0
    curve = catmull_rom(np.array([[0, 0], [1, 1], [2, 0]], np.float32), 4)
    assert curve.shape == (9, 2) and np.allclose(curve[[0, 4, 8]], [[0, 0], [1, 1], [2, 0]])
    assert ribbon(curve, 0.5).shape == (18, 2)
