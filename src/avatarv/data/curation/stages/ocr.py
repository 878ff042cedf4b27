"""OCR (seed: burned-in text filter): Tesseract (Debian ``tesseract-ocr``) through pytesseract on frames
sampled every ``every`` frames. Text lines are found first (``text_boxes``: rows dense in strong horizontal
gradients, the strokes of letters) and each line is read on its own (``--psm 7``), upscaled to ~``line_height``
px: Tesseract reading the whole frame as one block missed clear captions whose line touched other edges
(a caption box above the hair; 4 of 9 on world seed 2), and a line read alone is found in every sampled
caption frame of world seeds 0-2 (34 of 34, no word in 1019 caption-free frames). A frame
has text when Tesseract finds a word of >= ``min_chars`` letters/digits at confidence >= ``min_conf``; text
around each hit, frames every ``refine`` frames are probed in both directions until the text is gone, so the
interval's edges are found to within ``refine`` frames at little extra cost."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video, runs


def text_boxes(grey: np.ndarray, min_grad: float = 60.0) -> list[tuple[int, int, int, int]]:
    """Candidate text lines ``(x, y, w, h)`` in a grey frame: pixels with strong horizontal gradient (above
    ``min_grad`` and the frame's 97th percentile), joined along rows (7 x 1 closing) and up and down (1 x 3);
    in each component, runs of rows where at least 30 % of its width is stroke are lines when they are 5 px
    to a quarter of the frame high and at least 2.5 times as wide as high."""
    import cv2

    gx = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3))
    on = (gx > max(min_grad, float(np.percentile(gx, 97)))).astype(np.uint8)
    on = cv2.morphologyEx(on, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (7, 1)))
    on = cv2.morphologyEx(on, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 3)))
    _, lab, stats, _ = cv2.connectedComponentsWithStats(on)
    height = grey.shape[0]
    boxes = []
    for k, (x, y, w, h, area) in enumerate(stats[1:], start=1):
        if w < 12 or area < 20:
            continue
        comp = lab[y : y + h, x : x + w] == k
        for a, b in runs(comp.mean(axis=1) >= 0.3, 1):
            cols = np.flatnonzero(comp[a:b].any(axis=0))
            hh, ww = b - a, int(cols[-1] - cols[0] + 1)
            if 5 <= hh <= 0.25 * height and ww >= 2.5 * hh:
                boxes.append((int(x + cols[0]), int(y + a), ww, hh))
    return boxes


def frame_words(frame: np.ndarray, line_height: float, min_conf: float, min_chars: int) -> list[str]:
    """Words read in the frame's text lines (``text_boxes``), each line upscaled to ~``line_height`` px."""
    import cv2
    import pytesseract

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    words = []
    for x, y, w, h in text_boxes(grey):
        pad = max(2, h // 3)
        crop = grey[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
        up = max(1.0, line_height / h)
        if up != 1:
            crop = cv2.resize(crop, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
        data = pytesseract.image_to_data(crop, config="--psm 7", output_type=pytesseract.Output.DICT)
        for word, conf in zip(data["text"], data["conf"], strict=True):
            wd = "".join(ch for ch in str(word) if ch.isalnum())
            if len(wd) >= min_chars and float(conf) >= min_conf:
                words.append(wd)
    return words


class Ocr(Stage):
    name = "ocr"
    version = "3"
    inputs = ("normalise",)
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        every: int = 25  # 1 Hz: captions last seconds, and Tesseract costs ~0.5 s a frame
        line_height: int = 32  # each text line is upscaled to about this height before OCR
        refine: int = 6  # around a hit, probe every this many frames to find where the text starts and ends
        min_conf: float = 75.0
        min_chars: int = 3

    def unavailable(self) -> str | None:
        try:
            import pytesseract  # noqa: F401
        except ImportError:
            return "pytesseract is not installed (pip install pytesseract)"
        if shutil.which("tesseract") is None:
            return "the tesseract binary is not installed (apt-get install tesseract-ocr; make sysdeps)"
        return None

    def process(self, item: Item) -> Output:
        c = self.config
        video = load_video(item)
        n = video.num_frames
        has = np.zeros(n, bool)
        found: dict[int, list[str]] = {}
        def probe(t: int) -> bool:
            if t not in found:
                found[t] = frame_words(video.frames[t], c.line_height, c.min_conf, c.min_chars)
            return bool(found[t])

        hits = [t for t in range(0, n, c.every) if probe(t)]
        for t in hits:  # refine the edges of a caption around each coarse hit
            for direction in (-1, 1):
                last = t
                for k in range(1, c.every // c.refine + 1):
                    u = t + direction * k * c.refine
                    if not 0 <= u < n or not probe(u):
                        break
                    last = u
                a, b = sorted((t, last))
                has[max(a - c.refine // 2, 0) : b + c.refine // 2 + 1] = True
        found = {t: w for t, w in found.items() if w}
        texts = sorted({" ".join(w) for w in found.values()})
        return Output(values={"frames": n, "text": runs(has, 1), "texts": texts[:50],
                              "text_fraction": float(has.mean())}, arrays={"has_text": has})
