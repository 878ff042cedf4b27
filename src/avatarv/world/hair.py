"""Hair styles as 3D polygons in face units (they turn with the head).

``front`` covers the skull down to the hairline (fringes, partings, sideburns); ``back`` falls behind the
head (bob, long hair) and is drawn before the face; ``bun`` is a knot on top. Curly hair has a bumpy
outline. All shapes depend on the identity only, so they are built once per clip.
"""

from __future__ import annotations

import numpy as np

from avatarv.world.identity import Looks


def _skull_arc(looks: Looks, grow: float, u0: float, u1: float, n: int, bumps: float = 0.0) -> np.ndarray:
    """Points on the skull outline grown outward by ``grow`` (face units), angle u from u0 to u1 (0 = right)."""
    u = np.linspace(u0, u1, n)
    a = looks.jaw_width * 1.02
    rad = 1.0 + bumps * np.abs(np.sin(u * 9.0))
    x = (a + grow * rad) * np.cos(u)
    y = 0.02 - (looks.forehead + grow * rad) * np.sin(np.clip(u, 0, np.pi)) ** 0.9
    return np.stack([x, y, np.full_like(x, -0.1)], axis=1)


def _hairline(looks: Looks, side_y: float, centre_y_left: float, centre_y_right: float, n: int = 9):
    """Hairline across the forehead from the right temple to the left one (y up is negative)."""
    a = looks.jaw_width
    x = np.linspace(a * 0.97, -a * 0.97, n)
    k = (x / (a * 0.97)) ** 2  # 1 at the temples, 0 at the centre
    centre = np.where(x > 0, centre_y_right, centre_y_left)
    y = centre * (1 - k) + side_y * k - 0.12 * (1 - k) * k
    z = 0.55 * np.sqrt(np.clip(1 - k, 0, 1)) - 0.1 * k
    return np.stack([x, y, z], axis=1)


def hair_shapes(looks: Looks) -> dict[str, np.ndarray]:
    style = looks.hair_style
    vol = looks.hair_volume
    top = -looks.forehead  # y of the top of the skull
    hl = top * (0.62 - 0.22 * looks.hairline)  # hairline height at the centre
    shapes: dict[str, np.ndarray] = {}
    if style == "bald":
        # a horseshoe of short hair around the back and sides
        outer = _skull_arc(looks, 0.03, -0.15, 0.55, 6)
        outer2 = _skull_arc(looks, 0.03, np.pi - 0.55, np.pi + 0.15, 6)
        shapes["sides"] = outer
        shapes["sides2"] = outer2
        return shapes
    grow = {"buzz": 0.02, "short": 0.08 + vol * 0.5, "side_part": 0.1 + vol * 0.5, "curly": 0.22 + vol,
            "bob": 0.08 + vol * 0.5, "long": 0.06 + vol * 0.4, "bun": 0.03}[style]
    side_y = {"buzz": -0.25, "short": 0.05, "side_part": 0.05, "curly": 0.1, "bob": 0.0, "long": 0.0,
              "bun": -0.2}[style]
    bumps = 0.3 if style == "curly" else 0.0
    outer = _skull_arc(looks, grow, -0.12, np.pi + 0.12, 21, bumps)
    outer[0, 1] = outer[-1, 1] = side_y
    if style == "side_part":  # a swept fringe: low over one brow, high at the parting
        line = _hairline(looks, side_y, top * 0.3, hl * 1.25)
        line[-3:, 1] = np.minimum(line[-3:, 1], top * 0.3)
    elif style == "bob":
        line = _hairline(looks, side_y, top * 0.38, top * 0.38)  # straight bangs
    elif style == "long":
        line = _hairline(looks, side_y, hl * 1.05, hl * 1.05)
        line[len(line) // 2, 1] = hl * 1.25  # centre parting
    else:
        line = _hairline(looks, side_y, hl, hl)
    shapes["front"] = np.concatenate([outer, line[::-1]])  # right → over the top → left → back along the hairline
    if style in ("bob", "long"):
        length = 1.3 if style == "bob" else 2.6
        width = looks.jaw_width * (1.25 if style == "bob" else 1.35) + vol
        arc = _skull_arc(looks, grow + 0.03, -0.3, np.pi + 0.3, 17)
        back = np.concatenate(
            [[[width, length, -0.6]], arc, [[-width, length, -0.6], [-width * 0.4, length + 0.08, -0.6],
                                            [width * 0.4, length + 0.08, -0.6]]]
        )
        shapes["back"] = back
    if style == "bun":
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        r = 0.38
        shapes["bun"] = np.stack([r * np.cos(t), top - 0.25 + r * 0.8 * np.sin(t), np.full_like(t, -0.3)], axis=1)
    return shapes
