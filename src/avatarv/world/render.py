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

from avatarv.world.geometry import SLICES, Expression, face_points, pivot_origin, project
from avatarv.world.hair import hair_shapes
from avatarv.world.identity import Identity
from avatarv.world.paint import Painter, ShadeMap, catmull_rom, ellipse_poly, ribbon
from avatarv.world.scene import Scene, render_background
from avatarv.world.seeds import rng

EYE_WHITE = np.array([0.93, 0.91, 0.88], np.float32)
LASH = np.array([0.07, 0.05, 0.05], np.float32)
MOUTH_INSIDE = np.array([0.22, 0.06, 0.07], np.float32)


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


class Renderer:
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

    # ---- parts -------------------------------------------------------------------------------------
    def _body(self, pa: Painter, state: FrameState, lm):
        lk, s = self.looks, self.scale
        ox, oy = self.origin
        ox += 0.15 * (lm[8, 0] - ox)  # the torso follows the head a little
        w = lk.shoulder_width * s
        lift = state.shrug * 0.18 * s
        outline = np.array(
            [
                [-0.42 * s, 0.2 * s],
                [-0.6 * s, 0.75 * s - lift * 0.5],
                [-0.55 * w, 0.98 * s - lift],
                [-0.88 * w, 1.15 * s - lift],
                [-w, 1.6 * s - lift * 0.5],
                [-1.05 * w, 4.0 * s],
                [1.05 * w, 4.0 * s],
                [w, 1.6 * s - lift * 0.5],
                [0.88 * w, 1.15 * s - lift],
                [0.55 * w, 0.98 * s - lift],
                [0.6 * s, 0.75 * s - lift * 0.5],
                [0.42 * s, 0.2 * s],
            ],
            np.float32,
        )
        roll = np.deg2rad(state.roll * 0.25)
        rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]], np.float32)
        body = outline @ rot.T + (ox, oy)
        clothes = np.array(lk.clothes, np.float32)
        pa.fill([catmull_rom(body, 4, closed=True)], self._field(self.clothes_table, ox, oy + 2.0 * s))
        neck_base = np.array([[-0.42 * s, 0.7 * s], [0, 1.1 * s], [0.42 * s, 0.7 * s]]) @ rot.T + (ox, oy)
        if lk.collar == "vee":
            pa.fill([np.array([[-0.5 * s, 0.75 * s], [0.0, 1.55 * s], [0.5 * s, 0.75 * s]]) @ rot.T + (ox, oy)],
                    self.skin * 0.85)
        elif lk.collar == "shirt":
            for sgn in (-1, 1):
                tri = np.array([[sgn * 0.15 * s, 1.1 * s], [sgn * 0.62 * s, 0.8 * s], [sgn * 0.55 * s, 1.3 * s]])
                pa.fill([tri @ rot.T + (ox, oy)], np.float32([0.92, 0.92, 0.9]))
        pa.fill([ribbon(catmull_rom(neck_base, 4), 0.09 * s)], clothes * 0.6)

    def _neck(self, pa: Painter, P, lm):
        s = self.scale
        ox, oy = self.origin
        neck = np.array([lm[4], lm[12], [ox + 0.45 * s, oy + 0.95 * s], [ox - 0.45 * s, oy + 0.95 * s]])
        pa.fill([neck], self.skin * 0.78)
        # shadow cast by the jaw onto the neck
        jaw = P[SLICES["jaw_dense"]][6:-6]
        pa.darken([ribbon(jaw + (0, 0.12 * s), 0.3 * s)], 0.35, blur=0.07 * s)

    def _ears(self, pa: Painter, P):
        s = self.scale
        ears = P[SLICES["ears"]]
        shells, hollows = [], []
        for i in (0, 3):
            top, mid, lobe = ears[i], ears[i + 1], ears[i + 2]
            inner = np.array([top + (0, 0.02 * s), mid, lobe, (top + lobe) / 2 + (mid - (top + lobe) / 2) * -0.3])
            shells.append(catmull_rom(inner, 5, closed=True))
            c = (top + lobe + mid) / 3
            hollows.append(ellipse_poly(c[0], c[1], 0.04 * s, 0.1 * s, 0, 12))
        pa.fill(shells, self.skin * 0.9)
        pa.darken(hollows, 0.3, blur=0.02 * s)

    def _face_shadows(self, pa: Painter, P, lm, head_cov):
        """Eye sockets, the nose's shadow side and highlights, under the nose and the lower lip, the jaw line:
        one shade map, blurred once, clipped to the head."""
        s = self.scale
        shade = ShadeMap(pa, head_cov)
        shade.add([ellipse_poly(*((lm[a] + lm[b]) / 2 - (0, 0.1 * s)), 0.3 * s, 0.17 * s) for a, b in ((36, 39), (42, 45))],
                  0.17)
        side = -1.0 if self.light[0] > 0 else 1.0  # the nose side away from the key light
        bridge = lm[27:31]
        nose_side = np.concatenate([bridge + (side * 0.05 * s, 0), (lm[31] if side < 0 else lm[35])[None]])
        shade.add([ribbon(catmull_rom(nose_side, 3), 0.1 * s)], 0.22)
        shade.add([ellipse_poly(lm[33, 0], lm[33, 1] + 0.07 * s, 0.18 * s, 0.05 * s)], 0.25)
        shade.add([ellipse_poly(lm[57, 0], lm[57, 1] + 0.08 * s, 0.22 * s, 0.05 * s)], 0.2)
        shade.add([ellipse_poly(lm[i, 0], lm[i, 1] - 0.05 * s, 0.05 * s, 0.07 * s, 0, 12) for i in (31, 35)], 0.18)
        shade.add([ribbon(P[SLICES["jaw_dense"]], 0.12 * s)], 0.16)
        shade.add([ribbon(bridge[1:], 0.06 * s), ellipse_poly(lm[30, 0], lm[30, 1], 0.06 * s, 0.045 * s, 0, 12)],
                  -0.07)
        shade.apply(blur=0.035 * s)
        blush = self.skin * np.array([1.04, 0.86, 0.86], np.float32)
        cheeks = [ellipse_poly(c[0], c[1], 0.22 * s, 0.14 * s) for c in P[SLICES["cheeks"]]]
        pa.fill(cheeks, blush, alpha=0.35, blur=0.08 * s)

    def _eyes(self, pa: Painter, P, lm, e: Expression):
        """Both eyes per painting call: whites, irises, pupils, catchlights clipped by the lids, then lashes,
        lower lids and creases."""
        s, lk = self.scale, self.looks
        iris_r = lk.eye_width * 0.22 * s
        uppers, lowers, whites = [], [], []
        for base in (36, 42):
            e6 = lm[base : base + 6]
            if base == 42:  # reorder to outer, u13, u23, inner, l23, l13 like the left eye
                e6 = e6[[3, 2, 1, 0, 5, 4]]
            upper = catmull_rom(e6[[0, 1, 2, 3]], 5)
            lower = catmull_rom(e6[[3, 4, 5, 0]], 5)
            uppers.append(upper)
            lowers.append(lower)
            whites.append(np.concatenate([upper, lower[1:-1]]))
        cov = pa.coverage(whites)
        if cov is not None and e.blink < 0.95:
            pa.blend(*cov, EYE_WHITE * 0.95)
            ic = P[SLICES["iris"]]
            pa.fill([ellipse_poly(c[0], c[1], iris_r, iris_r, 0, 20) for c in ic], np.array(lk.iris, np.float32),
                    clip=cov)
            pa.fill([ellipse_poly(c[0], c[1], iris_r * 0.45, iris_r * 0.45, 0, 14) for c in ic], LASH * 0.5, clip=cov)
            glints = [ellipse_poly(c[0] + iris_r * 0.35, c[1] - iris_r * 0.35, iris_r * 0.18, iris_r * 0.18, 0, 8)
                      for c in ic]
            pa.fill(glints, np.float32([1, 1, 1]), alpha=0.8, clip=cov)
            pa.darken([ribbon(u, 0.1 * s) for u in uppers], 0.3, blur=0.02 * s, clip=cov)  # lid shadow
        widths = np.linspace(0.055, 0.035, len(uppers[0])) * s
        pa.fill([ribbon(u, widths) for u in uppers], LASH)
        pa.darken([ribbon(low, 0.025 * s) for low in lowers], 0.3)
        lift = (0, 0.09 * s * (1 - 0.6 * e.blink))
        pa.darken([ribbon((u - lift)[2:-2], 0.025 * s) for u in uppers], 0.25, blur=0.01 * s)

    def _brows(self, pa: Painter, lm):
        t = self.looks.brow_thickness * self.scale
        brows = []
        for a in (17, 22):
            pts = catmull_rom(lm[a : a + 5], 4)
            w = np.linspace(0.6, 1.15, len(pts)) if a == 17 else np.linspace(1.15, 0.6, len(pts))
            brows.append(ribbon(pts, w * t))
        pa.fill(brows, self.brow_rgb, alpha=0.92, blur=0.006 * self.scale)

    def _nose(self, pa: Painter, lm):
        s = self.scale
        nostrils = [ellipse_poly(lm[i, 0], lm[i, 1] - 0.015 * s, 0.045 * s, 0.025 * s, 0, 12) for i in (32, 34)]
        pa.fill(nostrils, self.skin * 0.3, blur=0.01 * s)
        base = catmull_rom(lm[31:36], 3)
        pa.darken([ribbon(base, 0.04 * s)], 0.25, blur=0.015 * s)

    def _mouth(self, pa: Painter, lm, e: Expression):
        s, lk = self.scale, self.looks
        lips = np.array(lk.lips, np.float32)
        outer = catmull_rom(lm[48:60], 4, closed=True)
        inner = catmull_rom(lm[60:68], 4, closed=True)
        pa.fill([outer], lips)
        upper = np.concatenate([catmull_rom(lm[48:55], 4), catmull_rom(lm[[64, 63, 62, 61, 60]], 4)])
        pa.fill([upper], lips * 0.82)
        pa.fill([ellipse_poly(lm[57, 0], (lm[57, 1] + lm[66, 1]) / 2, 0.12 * s, 0.03 * s, 0, 12)], lips * 1.15,
                alpha=0.5, blur=0.015 * s)
        gap = lm[66, 1] - lm[62, 1]
        if gap > 0.02 * s:
            cov = pa.coverage([inner])
            if cov is not None:
                pa.blend(*cov, MOUTH_INSIDE)
                teeth_h = min(0.09 * s, gap * 0.6)
                x0, x1 = lm[60, 0], lm[64, 0]
                y0 = min(lm[61, 1], lm[62, 1], lm[63, 1]) - 0.01 * s
                teeth = np.array([[x0, y0], [x1, y0], [x1, y0 + teeth_h], [x0, y0 + teeth_h]])
                pa.fill([teeth], np.array(lk.teeth, np.float32), clip=cov)
                if lk.teeth_gap:
                    mx = lm[62, 0]
                    pa.fill([np.array([[mx - 0.008 * s, y0], [mx + 0.008 * s, y0], [mx + 0.008 * s, y0 + teeth_h],
                                       [mx - 0.008 * s, y0 + teeth_h]])], MOUTH_INSIDE, clip=cov)
                if gap > 0.12 * s:
                    t = lm[66]
                    pa.fill([ellipse_poly(t[0], t[1], 0.2 * s, 0.07 * s)], np.float32([0.6, 0.25, 0.27]), clip=cov)
        pa.fill([ribbon(catmull_rom(lm[[60, 61, 62, 63, 64]], 4), 0.03 * s)], MOUTH_INSIDE, alpha=0.8)
        corners = [ellipse_poly(lm[i, 0], lm[i, 1], 0.035 * s, 0.035 * s, 0, 10) for i in (48, 54)]
        pa.darken(corners, 0.3, blur=0.015 * s)  # shadowed mouth corners

    def _facial_hair(self, pa: Painter, lm, head_cov):
        s, kind = self.scale, self.looks.facial_hair
        if kind == "stubble":
            region = np.concatenate([lm[2:15], lm[[54, 57, 48]]])
            pa.fill([catmull_rom(region, 3, closed=True)], self.hair_rgb * 0.6, alpha=0.3, blur=0.04 * s,
                    clip=head_cov)
        elif kind == "moustache":
            band = catmull_rom(lm[48:55], 4) - (0, 0.05 * s)
            pa.fill([ribbon(band, np.linspace(0.04, 0.1, len(band)) * s * np.r_[np.linspace(0.6, 1, len(band) // 2),
                                                                         np.linspace(1, 0.6, len(band) - len(band) // 2)])],
                    self.hair_rgb * 0.8, blur=0.01 * s)

    def _front_hair(self, pa: Painter, hair2, centre):
        s = self.scale
        shade = self._field(self.hair_table, centre[0], centre[1] - 0.3 * s)
        if "front" in hair2:
            alpha = 0.7 if self.looks.hair_style == "buzz" else 1.0
            poly = catmull_rom(hair2["front"], 3, closed=True)
            pa.fill([poly], shade, alpha=alpha)
            pa.darken([ribbon(catmull_rom(hair2["front"][21:], 3), 0.03 * s)], 0.25, blur=0.02 * s)
        for k in ("sides", "sides2"):
            if k in hair2:
                pa.fill([ribbon(hair2[k], 0.12 * s)], shade, alpha=0.8)
        if "bun" in hair2:
            pa.fill([hair2["bun"]], shade)

    def _accessories(self, pa: Painter, P, lm):
        s, lk = self.scale, self.looks
        if lk.glasses != "none":
            col = np.array(lk.glasses_colour, np.float32)
            rims = []
            for a, b in ((36, 39), (42, 45)):
                c = (lm[a] + lm[b]) / 2
                w = np.linalg.norm(lm[b] - lm[a]) * 0.75
                if lk.glasses == "round":
                    rim = ellipse_poly(c[0], c[1] + 0.02 * s, w, w * 0.8, 0, 24)
                else:
                    rim = catmull_rom(np.array([[c[0] - w, c[1] - 0.6 * w], [c[0] + w, c[1] - 0.6 * w],
                                                [c[0] + w, c[1] + 0.6 * w], [c[0] - w, c[1] + 0.6 * w]]), 2, closed=True)
                pa.fill([rim], np.float32([0.8, 0.85, 0.9]), alpha=0.12)
                rims.append(rim)
                pa.fill([ribbon(np.concatenate([rim, rim[:1]]), 0.035 * s)], col)
            left_in = rims[0][np.argmax(rims[0][:, 0])]
            right_in = rims[1][np.argmin(rims[1][:, 0])]
            pa.fill([ribbon(np.array([left_in, (left_in + right_in) / 2 - (0, 0.04 * s), right_in]), 0.03 * s)], col)
        if lk.earrings:
            ears = P[SLICES["ears"]]
            col = np.array(lk.earring_colour, np.float32)
            for lobe in (ears[2], ears[5]):
                pa.fill([ellipse_poly(lobe[0], lobe[1] + 0.05 * s, 0.045 * s, 0.045 * s, 0, 12)], col)
