"""The person around the face: torso and clothes, neck, ears, hair, glasses and earrings.

A mixin of ``Renderer`` (it uses the renderer's scale, origin, looks and shading tables).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from avatarv.world.geometry import SLICES
from avatarv.world.paint import Painter, catmull_rom, ellipse_poly, ribbon

if TYPE_CHECKING:
    from avatarv.world.render import FrameState


class FigureParts:
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
