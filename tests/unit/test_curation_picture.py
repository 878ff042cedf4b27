"""Picture-level curation rules: tile-median sharpness (blur that a caption cannot fake), the scene-cut gain
floor (a dark shot cut to a bright one), and the unsharp retry of face detection on defocused frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarv.data.curation.stage import Item
from avatarv.media.read import Video

ITEM = Item("synthetic.mp4", Path("synthetic.mp4"), "0")


def _video(frames: list[np.ndarray]) -> Video:
    return Video(np.stack(frames), 25.0, None, 16000, Path("synthetic.mp4"))


def _textured(seed: int = 0, size: int = 128) -> np.ndarray:
    r = np.random.default_rng(seed)
    f = cv2.GaussianBlur(r.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.2)
    return np.clip((f - f.mean()) * 3 + 128, 0, 255).astype(np.uint8)


def _caption(f: np.ndarray) -> np.ndarray:
    f = f.copy()
    cv2.putText(f, "BREAKING NEWS", (4, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return f


def _grey(f: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)


def test_tile_sharpness_ignores_a_caption_but_not_blur():
    from avatarv.data.curation.stages.visual import tile_sharpness

    base = cv2.GaussianBlur(_textured(), (0, 0), 1.0)  # a soft picture: a caption's strokes dominate its Laplacian

    def whole(f):
        g = _grey(f)
        return cv2.Laplacian(g, cv2.CV_32F).var() / (g.astype(np.float32).var() + 1.0)

    captioned = _caption(base)
    assert whole(captioned) > 1.5 * whole(base)  # the whole-frame measure calls the captioned frame sharper ...
    assert tile_sharpness(_grey(captioned)) < 1.15 * tile_sharpness(_grey(base))  # ... the tile median does not
    blurred = cv2.GaussianBlur(base, (0, 0), 2.0)
    assert tile_sharpness(_grey(blurred)) < 0.2 * tile_sharpness(_grey(base))


def test_visual_blur_flags_the_blurred_frames_of_a_half_captioned_shot(monkeypatch):
    from avatarv.data.curation.stages import visual

    base = cv2.GaussianBlur(_textured(1), (0, 0), 1.0)
    frames = [_caption(base)] * 20 + [base] * 20 + [cv2.GaussianBlur(base, (0, 0), 2.5)] * 15 + [base] * 20
    monkeypatch.setattr(visual, "load_video", lambda item: _video(frames))
    blur = np.asarray(visual.Visual().process(ITEM).arrays["blur"])
    assert blur[40:55].all() and not blur[:40].any() and not blur[55:].any(), np.flatnonzero(blur)


def _two_pictures(block: int) -> tuple[np.ndarray, np.ndarray]:
    """A dark picture and a bright one with other colours and a dark block of width ``block`` in the middle
    (a person standing in a recoloured room): similar layout, so the gain-matched grey difference is small."""

    def picture(hue: int) -> np.ndarray:
        r = np.random.default_rng(0)
        hsv = np.zeros((128, 128, 3), np.uint8)
        hsv[...] = (hue, 160, 200)
        f = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        for _ in range(12):
            colour = tuple(int(x) for x in r.integers(0, 255, 3))
            cv2.circle(f, tuple(int(x) for x in r.integers(0, 128, 2)), int(r.integers(5, 30)), colour, -1)
        return f

    a, b = picture(20), picture(100)
    cv2.rectangle(b, (64 - block // 2, 30), (64 + block // 2, 127), (60, 40, 30), -1)
    return (a * 0.4).astype(np.uint8), b


def test_scene_cut_from_a_dark_shot_to_a_similar_bright_one_but_not_an_exposure_change(monkeypatch):
    from avatarv.data.curation.stages import scenes
    from avatarv.data.curation.stages.common import grey_small

    dark, bright = _two_pictures(22)
    g = grey_small(np.stack([dark, bright]), 32)
    assert 0.15 < scenes._gain_residual(g[0], g[1]) < 0.25  # the case the floor was lowered for
    monkeypatch.setattr(scenes, "load_video", lambda item: _video([dark] * 30 + [bright] * 30))
    assert scenes.Scenes().process(ITEM).values["transitions"] == [30]

    lit = (dark.astype(np.float32) / 0.4).clip(0, 255).astype(np.uint8)  # the same picture, exposed right
    monkeypatch.setattr(scenes, "load_video", lambda item: _video([dark] * 30 + [lit] * 30))
    out = scenes.Scenes().process(ITEM).values
    assert 30 in out["candidates"] and out["transitions"] == []  # ContentDetector fires; the check rejects it


def test_unsharp_retry_finds_defocused_world_faces():
    pytest.importorskip("dlib")
    from avatarv.data.curation.stages.faces import unsharp
    from avatarv.media import detect_faces
    from avatarv.world import sample_identity, sample_scene
    from avatarv.world.render import FrameState, Renderer
    from avatarv.world.scene import render_background

    plain = retried = 0
    n = 16
    for i in range(n):
        f, _ = Renderer(sample_identity(100 + i, 0), sample_scene(i, 0), 128).render(FrameState())
        soft = cv2.GaussianBlur(f, (0, 0), 2.2)
        plain += bool(detect_faces(soft))
        retried += bool(detect_faces(soft) or detect_faces(unsharp(soft)))
    assert retried >= plain + 2 and retried >= 0.9 * n, (plain, retried)
    # no faces made up in empty rooms, blurred or not
    for i in range(8):
        room = render_background(sample_scene(i, 0), 128)
        assert not detect_faces(unsharp(cv2.GaussianBlur(room, (0, 0), 2.2))) and not detect_faces(unsharp(room))


def test_visual_blur_of_a_face_in_front_of_a_plain_wall(monkeypatch):
    """10 of 16 tiles are a flat wall whose (noise) energy blur hardly changes, so the whole-frame median does
    not see the blur; the textured tiles do (the person must cover more than a quarter of the frame: only then
    are they the majority of the textured half of the tiles)."""
    from avatarv.data.curation.stages import visual

    rng = np.random.default_rng(3)
    wall = np.full((128, 128, 3), 120.0, np.float32)

    def frame(blur: float) -> np.ndarray:
        f = wall + rng.normal(0, 1.5, wall.shape)  # sensor / codec noise on the wall
        patch = _textured(4, 96)[:64].astype(np.float32)
        if blur:
            patch = cv2.GaussianBlur(patch, (0, 0), blur)
        f[32:96, 32:128] = patch  # 6 whole tiles
        return np.clip(f, 0, 255).astype(np.uint8)

    frames = [frame(0)] * 30 + [frame(2.0)] * 20 + [frame(0)] * 30
    assert np.median([visual.tile_sharpness(_grey(f)) for f in frames[30:50]]) > 0.5 * np.median(
        [visual.tile_sharpness(_grey(f)) for f in frames[:30]])  # the whole-frame median barely moves
    monkeypatch.setattr(visual, "load_video", lambda item: _video(frames))
    blur = np.asarray(visual.Visual().process(ITEM).arrays["blur"])
    assert blur[30:50].all() and not blur[:30].any() and not blur[50:].any(), np.flatnonzero(blur)


def test_ocr_reads_a_caption_line_that_touches_the_picture_below():
    import shutil

    pytest.importorskip("pytesseract")
    if shutil.which("tesseract") is None:
        pytest.skip("no tesseract binary")
    from avatarv.data.curation.stages.ocr import frame_words, text_boxes

    f = cv2.GaussianBlur(_textured(5), (0, 0), 1.5)
    cv2.ellipse(f, (64, 80), (40, 52), 0, 0, 360, (90, 60, 40), -1)  # a head reaching up to the caption box
    plain = f.copy()
    cv2.rectangle(f, (20, 3), (108, 24), (0, 0, 0), -1)
    cv2.putText(f, "THE GARDEN", (26, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    boxes = text_boxes(_grey(f))
    assert any(y <= 12 <= y + h and w >= 40 for x, y, w, h in boxes), boxes  # the caption line
    words = frame_words(f, 32, 75, 3)
    assert "THE" in words or "GARDEN" in words, words
    assert frame_words(plain, 32, 75, 3) == []


def test_brisque_ranks_a_real_photo_above_its_blurred_and_noisy_copies():
    """BRISQUE (the brisque package, numpy 2 fix in visual.brisque_model) on scikit-image's astronaut photo:
    lower is better; blur and heavy noise both raise it by a wide margin."""
    from skimage import data

    from avatarv.data.curation.stages.visual import brisque_score

    img = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)  # a real photograph
    sharp = brisque_score(img)
    blurred = brisque_score(cv2.GaussianBlur(img, (0, 0), 2.0))
    noisy = brisque_score(np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8))
    assert np.isfinite(sharp) and sharp < 30, sharp
    assert blurred > sharp + 30 and noisy > sharp + 12, (sharp, blurred, noisy)  # measured 20.8, 63.4, 39.8
    assert np.isnan(brisque_score(np.zeros((64, 64, 3), np.uint8)))  # no texture (a fade's black frame): no score


def test_visual_reports_brisque_per_second(monkeypatch):
    from skimage import data

    from avatarv.data.curation.stages import visual

    img = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    frames = [img] * 25 + [cv2.GaussianBlur(img, (0, 0), 2.0)] * 25
    monkeypatch.setattr(visual, "load_video", lambda item: _video(frames))
    out = visual.Visual().process(ITEM)
    assert list(out.arrays["brisque_frames"]) == [0, 25]
    q = out.arrays["brisque"]
    assert q[1] > q[0] + 20  # the blurred second scores worse
    assert out.values["quality_brisque"] == pytest.approx(float(np.median(q)))
