"""OCR (seed: burned-in text filter): Tesseract (Debian ``tesseract-ocr``) through pytesseract on frames
sampled every ``every`` frames, upscaled so that small captions reach Tesseract's ~20 px glyph height. A frame
has text when Tesseract finds a word of >= ``min_chars`` letters/digits at confidence >= ``min_conf``; text
around each hit, frames every ``refine`` frames are probed in both directions until the text is gone, so the
interval's edges are found to within ``refine`` frames at little extra cost."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video, runs


def frame_words(frame: np.ndarray, upscale: float, min_conf: float, min_chars: int) -> list[str]:
    import cv2
    import pytesseract

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if upscale != 1:
        grey = cv2.resize(grey, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    data = pytesseract.image_to_data(grey, config="--psm 6", output_type=pytesseract.Output.DICT)
    words = []
    for word, conf in zip(data["text"], data["conf"], strict=True):
        w = "".join(ch for ch in str(word) if ch.isalnum())
        if len(w) >= min_chars and float(conf) >= min_conf:
            words.append(w)
    return words


class Ocr(Stage):
    name = "ocr"
    version = "2"
    inputs = ("normalise",)
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        every: int = 25  # 1 Hz: captions last seconds, and Tesseract costs ~0.5 s a frame
        target_height: int = 384  # frames are upscaled to about this height before OCR
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
        upscale = max(1.0, c.target_height / video.frames.shape[1])
        has = np.zeros(n, bool)
        found: dict[int, list[str]] = {}
        def probe(t: int) -> bool:
            if t not in found:
                found[t] = frame_words(video.frames[t], upscale, c.min_conf, c.min_chars)
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
