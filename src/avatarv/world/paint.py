"""Anti-aliased painting on a float32 RGB canvas: filled polygons, ribbons (tapered strokes), ellipses.

Every shape is rasterised into a coverage mask over its bounding box (supersampled ``fillPoly`` at
1/16-pixel vertex precision, box-filtered down), optionally blurred (soft shadows), and blended into the
canvas with a colour or a colour field (shading). Work is proportional to the shape's box, not the frame.
Coordinates: pixel (row i, column j) covers [j, j + 1) × [i, i + 1).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np

SHIFT = 4  # fillPoly fixed-point bits: 1/16 px
_ONE = 1 << SHIFT


@lru_cache(maxsize=32)
def _cr_basis(samples: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples, endpoint=False, dtype=np.float32)
    t2, t3 = t * t, t * t * t
    return (0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], axis=1)).astype(
        np.float32
    )  # [S, 4]


@lru_cache(maxsize=64)
def _cr_index(n: int, closed: bool) -> np.ndarray:
    spans = n if closed else n - 1
    return np.arange(spans)[:, None] + np.arange(4)[None, :]  # [spans, 4] into the extended points


def catmull_rom(points: np.ndarray, samples: int = 4, closed: bool = False) -> np.ndarray:
    """A smooth curve through ``points`` [N, 2] (uniform Catmull–Rom), ``samples`` per span."""
    p = np.asarray(points, dtype=np.float32)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    ctrl = ext[_cr_index(len(p), closed)]  # [spans, 4, 2]
    curve = np.matmul(_cr_basis(samples)[None], ctrl).reshape(-1, 2)
    if not closed:
        curve = np.concatenate([curve, p[-1:]])
    return curve


def ribbon(points: np.ndarray, widths) -> np.ndarray:
    """A closed polygon of a polyline [N, 2] thickened by ``widths`` (scalar or [N]) — a tapered stroke."""
    p = np.asarray(points, dtype=np.float32)
    ext = np.concatenate([p[:1], p, p[-1:]])
    d = ext[2:] - ext[:-2]  # central differences (one-sided at the ends)
    n = d[:, ::-1] * (np.float32(0.5) * np.asarray(widths, np.float32).reshape(-1, 1)
                      / np.maximum(np.hypot(d[:, :1], d[:, 1:]), np.float32(1e-6)))
    n[:, 0] = -n[:, 0]
    return np.concatenate([p + n, (p - n)[::-1]])


@lru_cache(maxsize=16)
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.float32)


def ellipse_poly(cx, cy, rx, ry, angle=0.0, n=24) -> np.ndarray:
    u = _unit_circle(n) * np.float32([rx, ry])
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        u = u @ np.float32([[c, s], [-s, c]])
    return u + np.float32([cx, cy])


ColourField = Callable[[tuple[int, int, int, int]], np.ndarray]  # box (x0, y0, x1, y1) → [h, w, 3]


class Painter:
    """Paints onto ``canvas`` (float32 [H, W, 3], modified in place)."""

    def __init__(self, canvas: np.ndarray):
        self.canvas = canvas
        self.h, self.w = canvas.shape[:2]

    def coverage(self, polys, blur: float = 0.0, margin: float = 1.0):
        """(mask float32 [h, w] in [0, 1], (x0, y0, x1, y1)) of the polygons' union, or None if off-canvas."""
        polys = [p for p in polys if len(p) >= 3]
        if not polys:
            return None
        allp = polys[0] if len(polys) == 1 else np.concatenate(polys)
        pad = margin + 3.0 * blur
        lo = allp.min(0)
        hi = allp.max(0)
        x0 = max(int(lo[0] - pad), 0)
        y0 = max(int(lo[1] - pad), 0)
        x1 = min(int(hi[0] + pad) + 2, self.w)
        y1 = min(int(hi[1] + pad) + 2, self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        h, w = y1 - y0, x1 - x0
        # Exact area coverage by supersampling (k² samples per pixel, box-filtered): OpenCV's LINE_AA
        # polygons are ~0.7 px too fat on every side, which would thicken thin strokes and push contours
        # off their labels. Sub-sample centres sit at (i + 0.5) / k in our coordinates.
        k = 4 if h * w <= 4096 else 2
        big = np.zeros((h * k, w * k), np.uint8)
        gain = np.float32(k * _ONE)
        const = np.array([(-x0 * k - 0.5) * _ONE + 0.5, (-y0 * k - 0.5) * _ONE + 0.5], np.float32)
        pts = [(p * gain + const).astype(np.int32) for p in polys]
        cv2.fillPoly(big, pts, 255, lineType=cv2.LINE_8, shift=SHIFT)
        m = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)
        if blur > 0.3:
            m = cv2.GaussianBlur(m, (0, 0), blur)
        return m, (x0, y0, x1, y1)

    def blend(self, mask: np.ndarray, box, colour, alpha: float = 1.0) -> None:
        """canvas[box] += mask·alpha·(colour − canvas[box]); colour: RGB, [h, w, 3] image, or a field."""
        x0, y0, x1, y1 = box
        region = self.canvas[y0:y1, x0:x1]
        if callable(colour):
            colour = colour(box)
        a = mask if alpha == 1.0 else mask * np.float32(alpha)
        a3 = cv2.merge([a, a, a])
        if isinstance(colour, np.ndarray) and colour.ndim == 3:
            diff = cv2.subtract(region, np.ascontiguousarray(colour, dtype=np.float32))
        else:
            c = np.asarray(colour, np.float64).ravel()
            diff = cv2.subtract(region, (float(c[0]), float(c[1]), float(c[2]), 0.0))
        # OpenCV element-wise ops: several times faster than numpy temporaries on large boxes
        cv2.subtract(region, cv2.multiply(diff, a3), dst=region)

    def fill(self, polys, colour, alpha: float = 1.0, blur: float = 0.0, clip=None) -> None:
        """Fill the union of ``polys``; ``clip`` is a (mask, box) from ``coverage`` to intersect with."""
        cov = self.coverage(polys, blur)
        if cov is None:
            return
        mask, box = cov
        if clip is not None:
            mask, box = _intersect(mask, box, *clip)
            if mask is None:
                return
        self.blend(mask, box, colour, alpha)

    def darken(self, polys, amount: float, blur: float = 0.0, tint=(1.0, 1.0, 1.0), clip=None) -> None:
        """Multiply the covered region by (1 - amount·mask) · tint: shadows that keep the texture below."""
        cov = self.coverage(polys, blur)
        if cov is None:
            return
        mask, box = cov
        if clip is not None:
            mask, box = _intersect(mask, box, *clip)
            if mask is None:
                return
        x0, y0, x1, y1 = box
        keep = 1.0 - mask * np.float32(amount)
        region = self.canvas[y0:y1, x0:x1]
        cv2.multiply(region, cv2.merge([keep, keep, keep]), dst=region)
        if tuple(tint) != (1.0, 1.0, 1.0):
            a = (mask * amount)[..., None]
            region *= 1.0 + a * (np.asarray(tint, np.float32) - 1.0)


def _intersect(mask, box, cmask, cbox):
    x0, y0 = max(box[0], cbox[0]), max(box[1], cbox[1])
    x1, y1 = min(box[2], cbox[2]), min(box[3], cbox[3])
    if x1 <= x0 or y1 <= y0:
        return None, None
    a = mask[y0 - box[1] : y1 - box[1], x0 - box[0] : x1 - box[0]]
    b = cmask[y0 - cbox[1] : y1 - cbox[1], x0 - cbox[0] : x1 - cbox[0]]
    return a * b, (x0, y0, x1, y1)


class ShadeMap:
    """Soft shading over one box: many polygons painted with signed amounts (> 0 darkens, < 0 lightens),
    blurred once and applied as one multiply inside a clip mask. One pass instead of one per shadow."""

    def __init__(self, painter: Painter, clip):
        self.painter = painter
        self.mask, self.box = clip
        x0, y0, x1, y1 = self.box
        self.map = np.zeros((y1 - y0, x1 - x0), np.float32)
        self.off = np.array([x0 + 0.5, y0 + 0.5], np.float32)

    def add(self, polys, amount: float) -> None:
        pts = [((p - self.off) * _ONE + 0.5).astype(np.int32) for p in polys]
        cv2.fillPoly(self.map, pts, float(amount), lineType=cv2.LINE_8, shift=SHIFT)

    def apply(self, blur: float) -> None:
        m = cv2.GaussianBlur(self.map, (0, 0), blur) if blur > 0.3 else self.map
        keep = 1.0 - m * self.mask
        x0, y0, x1, y1 = self.box
        region = self.painter.canvas[y0:y1, x0:x1]
        cv2.multiply(region, cv2.merge([keep, keep, keep]), dst=region)
