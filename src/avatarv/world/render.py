"""Draw one frame of a talking head: background, body, hair, face with shading, eyes, brows, nose, lips.

The face is drawn *from* its projected 3D points (``geometry.face_points``), so the 68 landmark labels
lie exactly on the drawn features. Shading is Lambertian on an ellipsoidal head with the scene's key
light; features carry the shadows (eye sockets, nose sides, under the lip and the jaw) that real faces
have and that HOG face detectors rely on. Camera shake is applied last as a small rigid warp, and the same
warp is applied to the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from avatarv.world.face_parts import FaceParts
from avatarv.world.figure_parts import FigureParts
from avatarv.world.geometry import SLICES, Expression, face_points, pivot_origin, project
from avatarv.world.hair import hair_shapes
from avatarv.world.identity import Identity
from avatarv.world.paint import Painter, catmull_rom
from avatarv.world.scene import Scene, render_background
from avatarv.world.seeds import rng


@dataclass(frozen=True)
class FrameState:
    """Everything that changes from frame to frame."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    expression: Expression = field(default_factory=Expression)
    shrug: float = 0.0  # 0..1 shoulders up
    shake: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx, dy (fraction of the frame), angle (deg)
    noise_index: int = 0


@dataclass
class FrameLabels:
    landmarks: np.ndarray  # [68, 2] px (x, y), iBUG order, pixel centres at integer coordinates
    iris: np.ndarray  # [2, 2] px (image-left eye, image-right eye)
    head_box: np.ndarray  # [4] x0, y0, x1, y1 px: skull + jaw


def _lum(c) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _texture(r: np.random.Generator, cells: tuple[int, int], n: int, amp: float) -> np.ndarray:
    """1 + amp · smooth noise [n, n]: a (rows, cols) grid of random values resized (size-independent)."""
    grid = r.uniform(-1.0, 1.0, cells).astype(np.float32)
    return 1.0 + amp * cv2.resize(grid, (n, n), interpolation=cv2.INTER_CUBIC)


class Renderer(FigureParts, FaceParts):
    """Renders one identity in one scene at ``size``² pixels."""

    N_NOISE = 8

    def __init__(self, identity: Identity, scene: Scene, size: int, noise_seed: int = 0):
        if not 32 <= size <= 1024:
            raise ValueError(f"size {size} outside 32..1024")
        self.identity, self.scene, self.size = identity, scene, int(size)
        lk = identity.looks
        self.looks = lk
        self.background = render_background(scene, self.size)
        self.scale = scene.face_frac * self.size / (lk.face_length + lk.brow_height)
        # face-unit origin (between the eyes) so the brow-to-chin box is centred at 47 % of the height
        cx = self.size * (0.5 + scene.offset_x)
        box_mid = self.size * (0.47 + scene.offset_y)
        cy = box_mid - self.scale * (lk.face_length - lk.brow_height) / 2
        self.origin = pivot_origin((cx, cy), self.scale)
        self.hair = hair_shapes(lk)
        self.hair_anchor = np.array([[0.0, 0.1, 0.0]], np.float32)  # where the back hair's shading is centred
        self.skin = np.array(lk.skin, np.float32)
        self.hair_rgb = np.array(lk.hair, np.float32)
        brow = 0.65 * self.hair_rgb + 0.35 * self.skin * 0.45
        if _lum(brow) > 0.35:  # light hair still has visible brows
            brow = brow * (0.35 / _lum(brow))
        self.brow_rgb = brow.astype(np.float32)
        ang = scene.light_angle
        k = 1.6 * scene.light_strength
        light = np.array([np.cos(ang) * k, np.sin(ang) * k, 1.0], np.float32)
        self.light = light / np.linalg.norm(light)
        self.light_gain = (np.array(scene.light_colour, np.float32) * scene.exposure).astype(np.float32)
        self.head_rx = lk.jaw_width * self.scale * 1.05
        self.head_ry = (lk.face_length + lk.forehead) / 2 * self.scale * 1.05
        # Textures belong to the identity (same in every scene and at every size) and ride on the tables.
        tr = rng(identity.seed, "render.texture", identity.identity_id)
        n2 = 2 * self.size
        skin_tex = _texture(tr, (120, 120), n2, 0.025) * _texture(tr, (10, 10), n2, 0.035)
        strands = (40, 40) if lk.hair_style == "curly" else (5, 110)
        hair_tex = _texture(tr, strands, n2, 0.22) * _texture(tr, (4, 30), n2, 0.1)
        clothes_tex = _texture(tr, (4, 14), n2, 0.08)
        self.skin_table = self._shading_table(self.skin, self.head_rx, self.head_ry, 0.62, 0.45) * skin_tex[..., None]
        self.hair_table = (
            self._shading_table(self.hair_rgb, self.head_rx * 1.1, self.head_ry * 1.1, 0.55, 0.6) * hair_tex[..., None]
        )
        w = lk.shoulder_width * self.scale
        self.clothes_table = (
            self._shading_table(np.array(lk.clothes, np.float32), w * 1.2, 2.2 * self.scale, 0.6, 0.5)
            * clothes_tex[..., None]
        )
        if scene.noise > 0:
            r = rng(noise_seed, "render.noise", identity.identity_id, scene.scene_id, self.size)
            self.noise = (r.standard_normal((self.N_NOISE, self.size, self.size, 3)) * scene.noise).astype(np.float32)
        else:
            self.noise = None

    # ---- shading fields ---------------------------------------------------------------------------
    def _shading_table(self, base, rx: float, ry: float, ambient: float, diffuse: float) -> np.ndarray:
        """Lambertian shading of an ellipsoid of radii (rx, ry) px as a function of the offset from its
        centre, tabulated over [-S, S)² once per clip: per frame a field is a slice, not a computation."""
        n = 2 * self.size
        d = np.arange(n, dtype=np.float32) - self.size + 0.5
        nx, ny = np.meshgrid(d / rx, d / ry)
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.02, 1.0))
        lam = np.clip(nx * self.light[0] + ny * self.light[1] + nz * self.light[2], 0.0, 1.0)
        return ((ambient + diffuse * lam)[..., None] * np.asarray(base, np.float32)).astype(np.float32)

    def _field(self, table: np.ndarray, cx: float, cy: float):
        n = self.size
        cx, cy = int(round(cx)), int(round(cy))

        def field_fn(box):
            x0, y0, x1, y1 = box
            # a centre far outside the frame (the body's) is clamped so the slice stays in the table
            ox = n - min(max(cx, x1 - n), x0 + n)
            oy = n - min(max(cy, y1 - n), y0 + n)
            return table[y0 + oy : y1 + oy, x0 + ox : x1 + ox]

        return field_fn

    # ---- the frame ---------------------------------------------------------------------------------
    def render(self, state: FrameState, canvas: np.ndarray | None = None, finish: bool = True):
        """(frame uint8 [S, S, 3], labels). With ``canvas`` (float32, from an earlier ``finish=False`` call)
        the person is drawn onto it (a second speaker); ``finish=False`` returns the float canvas before
        lighting, shake and noise."""
        lk, s = self.looks, self.scale
        pts3 = face_points(lk, state.expression)
        pose = (state.yaw, state.pitch, state.roll)
        P = project(pts3, *pose, s, self.origin)[:, :2]
        lm = P[SLICES["landmarks"]]
        if canvas is None:
            canvas = np.array(self.background, dtype=np.float32, copy=True)
        pa = Painter(canvas)

        self._body(pa, state, lm)
        hair2 = {k: project(v, *pose, s, self.origin)[:, :2] for k, v in self.hair.items()}
        if "back" in hair2:
            c = project(self.hair_anchor, *pose, s, self.origin)[0]
            back = self._field(self.hair_table, c[0], c[1])
            pa.fill([catmull_rom(hair2["back"], 3, closed=True)], lambda box: back(box) * np.float32(0.8))
        self._neck(pa, P, lm)
        self._ears(pa, P)
        head_poly = np.concatenate([P[SLICES["jaw_dense"]], P[SLICES["skull"]]])
        head_cov = pa.coverage([head_poly])
        centre = head_poly.mean(axis=0)
        pa.blend(*head_cov, self._field(self.skin_table, centre[0], centre[1]))
        self._face_shadows(pa, P, lm, head_cov)
        self._eyes(pa, P, lm, state.expression)
        self._brows(pa, lm)
        self._nose(pa, lm)
        self._mouth(pa, lm, state.expression)
        self._facial_hair(pa, lm, head_cov)
        self._front_hair(pa, hair2, centre)
        self._accessories(pa, P, lm)

        # labels in OpenCV/dlib pixel convention: pixel centres at integer coordinates
        labels = FrameLabels(
            landmarks=(lm - 0.5).astype(np.float32),
            iris=(P[SLICES["iris"]] - 0.5).astype(np.float32),
            head_box=np.array([*head_poly.min(0), *head_poly.max(0)], np.float32) - 0.5,
        )
        if not finish:
            return canvas, labels
        return self.finish(canvas, labels, state)

    def finish(self, canvas: np.ndarray, labels: FrameLabels, state: FrameState):
        """Scene light, camera shake (applied to the labels too) and sensor noise; float canvas → uint8."""
        canvas *= self.light_gain
        dx, dy, ang = state.shake
        if dx or dy or ang:
            canvas, labels = self._shake(canvas, labels, dx, dy, ang)
        if self.noise is not None:
            canvas += self.noise[state.noise_index % self.N_NOISE]
        canvas *= 255.0
        canvas += 0.5
        np.clip(canvas, 0.0, 255.0, out=canvas)
        frame = canvas.astype(np.uint8)
        return frame, labels

    def _shake(self, canvas, labels: FrameLabels, dx, dy, ang):
        c = self.size / 2
        m = cv2.getRotationMatrix2D((c, c), ang, 1.0)
        m[:, 2] += (dx * self.size, dy * self.size)
        canvas = cv2.warpAffine(canvas, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)

        def tf(p):
            return p @ m[:, :2].T + m[:, 2]

        box = labels.head_box.reshape(2, 2)
        corners = np.array([box[0], [box[1, 0], box[0, 1]], box[1], [box[0, 0], box[1, 1]]])
        cb = tf(corners)
        labels = FrameLabels(
            landmarks=tf(labels.landmarks).astype(np.float32),
            iris=tf(labels.iris).astype(np.float32),
            head_box=np.array([*cb.min(0), *cb.max(0)], np.float32),
        )
        return canvas, labels
