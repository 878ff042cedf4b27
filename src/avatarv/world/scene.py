"""A scene: background, lighting and framing. The same identity is filmed in many scenes.

The background is drawn from the scene's own seed in normalised coordinates, so one scene looks the same
at 64 px and at 512 px (only sharper). Kinds: smooth gradients, rooms (wall, floor, window, door, picture,
lamp), bookshelves, bokeh, wall textures (plaster, brick, stripes, tiles), outdoor (sky, hills, trees)
and studio backdrops with a vignette.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import cv2
import numpy as np

from avatarv.world.seeds import rng

KINDS = ("gradient", "room", "shelves", "bokeh", "texture", "outdoor", "studio")


@dataclass(frozen=True)
class Scene:
    scene_id: int
    seed: int
    kind: str
    light_colour: tuple[float, float, float]  # multiplies the whole image (white balance)
    light_angle: float  # radians; direction the key light comes from, in the image plane (0 = from the right)
    light_strength: float  # 0 flat … 1 strong directional shading
    exposure: float
    face_frac: float  # brow-to-chin height as a fraction of the frame height
    offset_x: float  # face centre offset, fraction of the frame
    offset_y: float
    shake: float  # camera shake amplitude, fraction of the frame
    noise: float  # sensor noise sigma (0..1 scale)

    def traits(self) -> dict:
        return asdict(self)


def sample_scene(scene_id: int, seed: int = 0) -> Scene:
    r = rng(seed, "scene", scene_id)
    # consecutive scene ids cycle through the kinds (from a seed-dependent start), so any few scenes differ
    kind = KINDS[(int(scene_id) + int(rng(seed, "scene.kinds").integers(len(KINDS)))) % len(KINDS)]
    warm = r.uniform(-1.0, 1.0)
    light = np.array([1.0 + 0.10 * warm, 1.0, 1.0 - 0.12 * warm]) * r.uniform(0.97, 1.03, 3)
    return Scene(
        scene_id=int(scene_id),
        seed=int(seed),
        kind=kind,
        light_colour=tuple(float(round(v, 4)) for v in light),
        light_angle=float(r.uniform(-np.pi, np.pi)),
        light_strength=float(r.uniform(0.15, 0.7)),
        exposure=float(r.uniform(0.9, 1.1)),
        face_frac=float(r.uniform(0.34, 0.46)),
        offset_x=float(r.uniform(-0.07, 0.07)),
        offset_y=float(r.uniform(-0.05, 0.04)),
        shake=float(r.uniform(0.002, 0.008) if r.random() < 0.25 else 0.0),
        noise=float(r.uniform(0.0, 0.02)),
    )


def _smooth_noise(r: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1]: a ``cells``² random grid resized smoothly to ``size``² (size-independent)."""
    grid = r.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _colour(r: np.random.Generator, lo=0.15, hi=0.85) -> np.ndarray:
    return r.uniform(lo, hi, 3).astype(np.float32)


def _rect(img: np.ndarray, x0, y0, x1, y1, colour) -> None:
    s = img.shape[0]
    a, b = int(round(x0 * s)), int(round(y0 * s))
    c, d = int(round(x1 * s)), int(round(y1 * s))
    img[max(b, 0) : max(d, 0), max(a, 0) : max(c, 0)] = colour


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    v = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(v, v)


def _gradient(r, size):
    xx, yy = _grid(size)
    c0, c1 = _colour(r), _colour(r)
    ang = r.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang), 0, 1)[..., None]
    return c0 * (1 - t) + c1 * t + 0.03 * _smooth_noise(r, size, 6)[..., None]


def _room(r, size):
    xx, yy = _grid(size)
    wall, floor = _colour(r, 0.35, 0.85), _colour(r, 0.15, 0.55)
    horizon = r.uniform(0.68, 0.85)
    img = np.where((yy < horizon)[..., None], wall, floor).astype(np.float32)
    img *= (1.0 + 0.04 * _smooth_noise(r, size, 10))[..., None]
    corner = r.uniform(0.1, 0.9)  # a wall corner: one side darker
    img[xx > corner] *= r.uniform(0.8, 0.95)
    for _ in range(int(r.integers(1, 4))):  # window / door / picture
        w, h = r.uniform(0.12, 0.3), r.uniform(0.15, 0.45)
        x0, y0 = r.uniform(-0.05, 0.95 - w), r.uniform(0.05, horizon - h)
        what = r.integers(3)
        if what == 0:  # window: bright with a frame and bars
            _rect(img, x0 - 0.01, y0 - 0.01, x0 + w + 0.01, y0 + h + 0.01, _colour(r, 0.7, 0.95))
            _rect(img, x0, y0, x0 + w, y0 + h, np.array([0.75, 0.85, 0.95]) * r.uniform(0.85, 1.05))
            _rect(img, x0 + w / 2 - 0.004, y0, x0 + w / 2 + 0.004, y0 + h, _colour(r, 0.7, 0.95))
        elif what == 1:  # door
            _rect(img, x0, y0, x0 + w * 0.8, horizon, _colour(r, 0.2, 0.6))
        else:  # picture with a frame
            _rect(img, x0 - 0.01, y0 - 0.01, x0 + w + 0.01, y0 + h * 0.6 + 0.01, _colour(r, 0.05, 0.4))
            _rect(img, x0, y0, x0 + w, y0 + h * 0.6, _colour(r, 0.2, 0.9))
    if r.random() < 0.5:  # a lamp glow
        cx, cy = r.uniform(0.05, 0.95), r.uniform(0.1, 0.5)
        glow = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.08**2))[..., None]
        img = img + 0.35 * glow * np.array([1.0, 0.85, 0.6], dtype=np.float32)
    return img


def _shelves(r, size):
    img = np.ones((size, size, 3), np.float32) * _colour(r, 0.25, 0.6)
    wood = _colour(r, 0.2, 0.5) * np.array([1.0, 0.75, 0.5], dtype=np.float32)
    n = int(r.integers(3, 6))
    for i in range(n):
        y = (i + 1) / (n + 0.5)
        _rect(img, 0, y, 1, y + 0.02, wood)
        x = r.uniform(-0.05, 0.05)
        while x < 1.0:  # books
            bw = r.uniform(0.015, 0.05)
            bh = r.uniform(0.5, 0.9) / (n + 0.5)
            if r.random() < 0.85:
                _rect(img, x, y - bh, x + bw, y, _colour(r, 0.1, 0.9))
            x += bw + r.uniform(0.0, 0.02)
    return img


def _bokeh(r, size):
    xx, yy = _grid(size)
    img = _gradient(r, size) * 0.6
    for _ in range(int(r.integers(10, 25))):
        cx, cy, rad = r.uniform(0, 1), r.uniform(0, 1), r.uniform(0.02, 0.09)
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        disc = np.clip((rad - d) / (0.15 * rad) + 0.5, 0, 1)[..., None]
        img = img + disc * _colour(r, 0.2, 1.0) * r.uniform(0.15, 0.4)
    return img


def _texture(r, size):
    xx, yy = _grid(size)
    base = _colour(r, 0.3, 0.85)
    kind = r.integers(4)
    if kind == 0:  # plaster
        return base * (1 + 0.08 * _smooth_noise(r, size, 24) + 0.05 * _smooth_noise(r, size, 7))[..., None]
    if kind == 1:  # brick
        rows = int(r.integers(8, 16))
        row = np.floor(yy * rows)
        col = np.floor(xx * rows / 2 + 0.5 * (row % 2))
        mortar = ((yy * rows) % 1 < 0.1) | ((xx * rows / 2 + 0.5 * (row % 2)) % 1 < 0.05)
        shade = 0.85 + 0.15 * np.sin(row * 12.9898 + col * 78.233) ** 2
        img = base * shade[..., None]
        return np.where(mortar[..., None], np.float32(0.75), img)
    if kind == 2:  # stripes
        period, ang = r.uniform(0.04, 0.15), r.uniform(0, np.pi)
        t = (xx * np.cos(ang) + yy * np.sin(ang)) / period
        other = _colour(r, 0.3, 0.85)
        return np.where((t % 1 < 0.5)[..., None], base, other).astype(np.float32)
    rows = int(r.integers(6, 14))  # tiles
    grout = ((xx * rows) % 1 < 0.06) | ((yy * rows) % 1 < 0.06)
    return np.where(grout[..., None], base * 0.7, base * (1 + 0.05 * _smooth_noise(r, size, rows)[..., None]))


def _outdoor(r, size):
    xx, yy = _grid(size)
    sky_top, sky_low = np.array([0.35, 0.55, 0.85]), np.array([0.75, 0.85, 0.95])
    img = (sky_top * (1 - yy[..., None]) + sky_low * yy[..., None]).astype(np.float32)
    for layer in range(int(r.integers(1, 4))):
        h = r.uniform(0.45, 0.8) + 0.07 * layer
        ridge = h + 0.06 * _smooth_noise(r, size, 5)[size // 2][None, :]
        green = np.array([0.25, 0.45, 0.2]) * r.uniform(0.6, 1.2) * (0.85**layer)
        img = np.where((yy > ridge)[..., None], green.astype(np.float32), img)
    for _ in range(int(r.integers(0, 5))):  # trees as dark blobs
        cx, cy, rad = r.uniform(0, 1), r.uniform(0.4, 0.7), r.uniform(0.04, 0.1)
        d = np.sqrt((xx - cx) ** 2 + ((yy - cy) * 0.8) ** 2)
        img = np.where((d < rad)[..., None], np.array([0.1, 0.25, 0.1], np.float32) * r.uniform(0.7, 1.3), img)
    return img


def _studio(r, size):
    xx, yy = _grid(size)
    base = _colour(r, 0.2, 0.8)
    d = np.sqrt((xx - 0.5) ** 2 + (yy - 0.45) ** 2)
    return base * np.clip(1.15 - 0.9 * d, 0.3, 1.2)[..., None] * np.ones(3, np.float32)


_DRAW = {
    "gradient": _gradient,
    "room": _room,
    "shelves": _shelves,
    "bokeh": _bokeh,
    "texture": _texture,
    "outdoor": _outdoor,
    "studio": _studio,
}


@lru_cache(maxsize=64)
def _background_cached(scene: Scene, size: int) -> np.ndarray:
    r = rng(scene.seed, "scene.background", scene.scene_id)
    img = _DRAW[scene.kind](r, size).astype(np.float32)
    # A slight defocus: the camera focuses on the person.
    sigma = 0.004 * size
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = np.clip(img, 0.0, 1.0)
    img.setflags(write=False)
    return img


def render_background(scene: Scene, size: int) -> np.ndarray:
    """The scene's background at ``size``² pixels, float32 RGB in [0, 1] (read-only, cached)."""
    return _background_cached(scene, int(size))
