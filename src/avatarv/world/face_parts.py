"""The face's features, drawn from the projected landmarks: shading, eyes, brows, nose, lips, facial hair.

A mixin of ``Renderer`` (it uses the renderer's scale, looks, colours and light); split out so each file
holds one idea.
"""

from __future__ import annotations

import numpy as np

from avatarv.world.geometry import SLICES, Expression
from avatarv.world.paint import Painter, ShadeMap, catmull_rom, ellipse_poly, ribbon

EYE_WHITE = np.array([0.93, 0.91, 0.88], np.float32)
LASH = np.array([0.07, 0.05, 0.05], np.float32)
MOUTH_INSIDE = np.array([0.22, 0.06, 0.07], np.float32)


class FaceParts:
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
