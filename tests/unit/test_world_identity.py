"""Identities and scenes are pure functions of (seed, id); different seeds/ids give different people."""

from __future__ import annotations

import numpy as np

from avatarv.world import sample_identity, sample_scene
from avatarv.world.geometry import Expression, face_points, project
from avatarv.world.seeds import rng


def test_identity_deterministic():
    assert sample_identity(3, 7) == sample_identity(3, 7)
    assert sample_identity(3, 7).traits() == sample_identity(3, 7).traits()
    assert sample_scene(2, 7) == sample_scene(2, 7)


def test_different_seeds_and_ids_differ():
    base = sample_identity(0, 0)
    others = [sample_identity(0, s) for s in range(1, 6)] + [sample_identity(i, 0) for i in range(1, 6)]
    for o in others:
        assert o.looks != base.looks
        assert o.behaviour != base.behaviour
    # the population varies in what matters for behaviour metrics
    pop = [sample_identity(i, 0).behaviour for i in range(40)]
    assert np.std([b.blink_rate for b in pop]) > 3.0
    assert np.std([b.nod_amp for b in pop]) > 0.8
    assert len({b.mouth_lag_frames for b in pop}) >= 3
    styles = {sample_identity(i, 0).looks.hair_style for i in range(40)}
    assert len(styles) >= 6


def test_scene_kinds_cycle():
    kinds = {sample_scene(j, 0).kind for j in range(7)}
    assert len(kinds) == 7


def test_streams_are_independent():
    a = rng(0, "identity.looks", 1).random(3)
    b = rng(0, "identity.behaviour", 1).random(3)
    assert not np.allclose(a, b)
    assert np.array_equal(a, rng(0, "identity.looks", 1).random(3))


def test_geometry_expressions_move_the_right_points():
    looks = sample_identity(1, 0).looks
    neutral = face_points(looks, Expression())[:68]
    opened = face_points(looks, Expression(mouth_open=1.0))[:68]
    closed_eyes = face_points(looks, Expression(blink=1.0))[:68]
    # mouth opening separates the inner lips (62 top, 66 bottom) and drops the chin (8)
    assert opened[66, 1] - opened[62, 1] > neutral[66, 1] - neutral[62, 1] + 0.25
    assert opened[8, 1] > neutral[8, 1]
    np.testing.assert_allclose(opened[17:48], neutral[17:48])  # brows, nose, eyes untouched
    # a blink brings the upper lids (37, 38) down to the lower ones (41, 40)
    assert abs(closed_eyes[37, 1] - closed_eyes[41, 1]) < 0.02 < abs(neutral[37, 1] - neutral[41, 1])


def test_projection_pose_conventions():
    looks = sample_identity(1, 0).looks
    p = face_points(looks, Expression())
    front = project(p, 0, 0, 0, 10.0, (50, 50))
    right = project(p, 20, 0, 0, 10.0, (50, 50))
    down = project(p, 0, 15, 0, 10.0, (50, 50))
    nose = 30
    assert right[nose, 0] > front[nose, 0] + 1  # yaw > 0 turns the face to the image right
    assert down[nose, 1] > front[nose, 1] + 0.5  # pitch > 0: chin down, nose moves down
