"""The face as 3D points: the 68 iBUG landmarks plus the extra contours the renderer needs.

Face units: half the face width ≈ 1, the eye line at y = 0, x to the image right, y down, z towards the
camera. The 68 points follow the iBUG 300-W layout (0–16 jaw, 17–26 brows, 27–35 nose, 36–47 eyes,
48–67 lips), so labels compare directly with dlib's 68-point predictor. The drawn face silhouette *is*
the jaw contour, the drawn lids *are* the eye points, and so on: labels are exact by construction.

Expressions (mouth opening and rounding, smile, blink, brow raise, gaze) deform the points before the
rigid head pose is applied; ``project`` applies the pose with a weak-perspective camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.world.identity import Looks

# Head rotation pivot (top of the neck), face units.
PIVOT = np.array([0.0, 1.0, -0.8], dtype=np.float32)
N_JAW_DENSE = 33  # silhouette samples from ear to ear, for drawing
N_SKULL = 25


@dataclass(frozen=True)
class Expression:
    """Per-frame non-rigid state. All in [0, 1] except gaze (-1..1 each axis)."""

    mouth_open: float = 0.0
    mouth_round: float = 0.0
    smile: float = 0.0
    blink: float = 0.0
    brow_raise: float = 0.0  # face units of extra brow height
    gaze_x: float = 0.0
    gaze_y: float = 0.0


# Named slices into the array returned by ``face_points``.
SLICES: dict[str, slice] = {}


def _register() -> None:
    sizes = [
        ("landmarks", 68),
        ("jaw_dense", N_JAW_DENSE),
        ("skull", N_SKULL),
        ("iris", 2),
        ("ears", 6),  # per side: top, middle (outer), lobe
        ("cheeks", 2),
        ("forehead", 1),
    ]
    start = 0
    for name, n in sizes:
        SLICES[name] = slice(start, start + n)
        start += n
    SLICES["all"] = slice(0, start)


_register()
N_POINTS = SLICES["all"].stop


def _resample(curve: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced by arc length along a polyline [M, D]."""
    seg = np.linalg.norm(np.diff(curve[:, :2], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, curve[:, d]) for d in range(curve.shape[1])], axis=1)


def _jaw(looks: Looks, mouth_open: float) -> np.ndarray:
    """Ear-to-ear silhouette (x, y, z), 201 dense samples; the chin drops as the jaw opens."""
    t = np.linspace(0.0, np.pi, 201)
    n = looks.jaw_power
    c = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2.0 / n)
    s = np.abs(np.sin(t)) ** (2.0 / n)
    y0 = 0.02
    length = looks.face_length + 0.22 * mouth_open
    x = -looks.jaw_width * c * (1.0 - (1.0 - looks.chin_width) * 0.18 * s**6)
    y = y0 + (length - y0) * s
    z = -0.15 + 0.75 * s**1.5
    return np.stack([x, y, z], axis=1)


def face_points(looks: Looks, e: Expression) -> np.ndarray:
    """All points of the face in face units, [N_POINTS, 3] float32 (see ``SLICES``)."""
    p = np.zeros((N_POINTS, 3), dtype=np.float64)
    lm = p[SLICES["landmarks"]]

    # Jaw: 17 landmarks equally spaced along the silhouette, plus a dense copy for drawing.
    jaw = _jaw(looks, e.mouth_open)
    lm[0:17] = _resample(jaw, 17)
    p[SLICES["jaw_dense"]] = _resample(jaw, N_JAW_DENSE)

    # Skull: from the right end of the jaw (image right) over the top back to the left end.
    u = np.linspace(0.0, np.pi, N_SKULL)
    a = looks.jaw_width * 1.02
    p[SLICES["skull"]] = np.stack(
        [a * np.cos(u), 0.02 - looks.forehead * np.sin(u) ** 0.9, -0.15 + 0.1 * np.sin(u)], axis=1
    )

    # Brows (17–21 image-left, outer → inner; 22–26 mirrored).
    w = looks.eye_width
    outer = looks.eye_spacing + w / 2 + 0.07
    inner = 0.13
    k = np.linspace(0.0, 1.0, 5)  # outer → inner
    bx = outer + (inner - outer) * k
    arch = looks.brow_arch * np.sin(np.pi * np.clip(k * 1.25, 0, 1))
    droop = 0.09 * (1.0 - k) ** 2  # brows end lower at the temples
    by = -looks.brow_height - arch + droop - e.brow_raise * (0.7 + 0.3 * k) + 0.03 * k - 0.02 * e.smile
    bz = 0.50 + 0.18 * k
    lm[17:22] = np.stack([-bx, by, bz], axis=1)
    lm[22:27] = np.stack([bx[::-1], by[::-1], bz[::-1]], axis=1)

    # Nose: bridge 27–30 down the midline, base 31–35.
    ln, nw = looks.nose_length, looks.nose_width
    lm[27:31] = np.array([[0.0, -0.04, 0.62], [0.0, 0.26 * ln, 0.76], [0.0, 0.53 * ln, 0.90], [0.0, 0.80 * ln, 1.05]])
    lm[31:36] = np.array(
        [
            [-nw, ln - 0.04, 0.78],
            [-nw / 2, ln + 0.0, 0.86],
            [0.0, ln + 0.02, 0.90],
            [nw / 2, ln + 0.0, 0.86],
            [nw, ln - 0.04, 0.78],
        ]
    )

    # Eyes: corners, two upper-lid and two lower-lid points each. Blink brings the upper lid down to
    # just above the lower lid; a smile lifts the lower lid (a Duchenne squint).
    hu = looks.eye_open * w * 0.62
    hl = looks.eye_open * w * 0.38
    closure = np.clip(e.blink, 0.0, 1.0)
    squint = 0.25 * e.smile
    for side, base in ((-1, 36), (1, 42)):
        cx = side * looks.eye_spacing
        xo, xi = cx + side * w / 2, cx - side * w / 2  # outer, inner corners
        yo, yi = -looks.eye_tilt, 0.0
        x13, x23 = xo + (xi - xo) / 3, xo + 2 * (xi - xo) / 3
        y13, y23 = yo + (yi - yo) / 3, yo + 2 * (yi - yo) / 3
        low13, low23 = y13 + hl * (1 - squint), y23 + hl * (1 - squint)
        up13 = (y13 - hu) * (1 - closure) + (low13 - 0.01) * closure
        up23 = (y23 - hu) * (1 - closure) + (low23 - 0.01) * closure
        pts = {
            "outer": (xo, yo, 0.45),
            "u13": (x13, up13, 0.58),
            "u23": (x23, up23, 0.60),
            "inner": (xi, yi, 0.56),
            "l23": (x23, low23, 0.57),
            "l13": (x13, low13, 0.55),
        }
        order = ["outer", "u13", "u23", "inner", "l23", "l13"]
        if side == 1:  # iBUG right eye starts at the inner corner
            order = ["inner", "u23", "u13", "outer", "l13", "l23"]
        lm[base : base + 6] = [pts[o] for o in order]
        p[SLICES["iris"].start + (0 if side < 0 else 1)] = (
            cx + e.gaze_x * w * 0.22,
            (yo + yi) / 2 - hu * 0.2 + e.gaze_y * w * 0.12,
            0.62,
        )

    # Lips: outer 48–59, inner 60–67. Opening separates the inner lips (mostly the lower one moving down
    # with the jaw); rounding narrows the mouth; smiling widens it and lifts the corners.
    ym = ln + (looks.face_length - ln) * 0.42
    mw = looks.mouth_width * (1.0 - 0.28 * e.mouth_round) + 0.06 * e.smile
    lu, ll = looks.lip_upper, looks.lip_lower
    gap = 0.34 * e.mouth_open
    up_in, lo_in = ym - 0.2 * gap, ym + 0.8 * gap
    cy = ym - 0.07 * e.smile
    lm[48:60] = np.array(
        [
            [-mw, cy, 0.62],
            [-0.62 * mw, up_in - lu * 0.78, 0.78],
            [-0.25 * mw, up_in - lu * 1.0, 0.86],
            [0.0, up_in - lu * 0.86, 0.88],
            [0.25 * mw, up_in - lu * 1.0, 0.86],
            [0.62 * mw, up_in - lu * 0.78, 0.78],
            [mw, cy, 0.62],
            [0.62 * mw, lo_in + ll * 0.8, 0.76],
            [0.28 * mw, lo_in + ll * 1.0, 0.82],
            [0.0, lo_in + ll * 1.02, 0.83],
            [-0.28 * mw, lo_in + ll * 1.0, 0.82],
            [-0.62 * mw, lo_in + ll * 0.8, 0.76],
        ]
    )
    mi = 0.86 * mw
    lm[60:68] = np.array(
        [
            [-mi, cy, 0.64],
            [-0.4 * mw, up_in - 0.01, 0.80],
            [0.0, up_in - 0.01, 0.84],
            [0.4 * mw, up_in - 0.01, 0.80],
            [mi, cy, 0.64],
            [0.4 * mw, lo_in, 0.80],
            [0.0, lo_in, 0.84],
            [-0.4 * mw, lo_in, 0.80],
        ]
    )

    # Ears: top, outer middle, lobe on each side, behind the silhouette.
    es = looks.ear_size
    ex = looks.jaw_width + 0.04
    p[SLICES["ears"]] = np.array(
        [
            [-ex, -0.12, -0.35],
            [-ex - 0.16, 0.12, -0.40],
            [-ex + 0.02, -0.12 + 2 * es, -0.35],
            [ex, -0.12, -0.35],
            [ex + 0.16, 0.12, -0.40],
            [ex - 0.02, -0.12 + 2 * es, -0.35],
        ]
    )
    p[SLICES["cheeks"]] = np.array([[-0.55, 0.55 - 0.06 * e.smile, 0.55], [0.55, 0.55 - 0.06 * e.smile, 0.55]])
    p[SLICES["forehead"]] = np.array([[0.0, -0.7, 0.55]])
    return p.astype(np.float32)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) · Ry(yaw) · Rx(pitch), angles in degrees; yaw > 0 turns the face to the image right,
    pitch > 0 tilts the chin down (a nod), roll > 0 tilts the head clockwise in the image."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # y down, z to camera: chin (y>0) moves back
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return (rz @ ry @ rx).astype(np.float32)


def project(points: np.ndarray, yaw: float, pitch: float, roll: float, scale: float, origin) -> np.ndarray:
    """Weak-perspective image coordinates [N, 3]: (x_px, y_px, depth). ``origin`` is where the pivot lands."""
    r = rotation(yaw, pitch, roll)
    q = (points - PIVOT) @ r.T
    out = np.empty_like(q)
    out[:, 0] = q[:, 0] * scale + origin[0]
    out[:, 1] = q[:, 1] * scale + origin[1]
    out[:, 2] = q[:, 2]
    return out


def pivot_origin(face_center_px, scale: float) -> tuple[float, float]:
    """Pivot position in pixels that puts the face-unit origin (between the eyes) at ``face_center_px``
    for a frontal pose."""
    return (face_center_px[0] + PIVOT[0] * scale, face_center_px[1] + PIVOT[1] * scale)
