"""OCR (seed: burned-in text filter): Tesseract (Debian ``tesseract-ocr``) through pytesseract on frames
sampled every ``every`` frames, upscaled so that small captions reach Tesseract's ~20 px glyph height. A frame
has text when Tesseract finds a word of >= ``min_chars`` letters/digits at confidence >= ``min_conf``; text
intervals are runs of such samples (held to the next sample)."""

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
    inputs = ("normalise",)
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        every: int = 25  # 1 Hz: captions last seconds, and Tesseract costs ~0.5 s a frame
        target_height: int = 384  # frames are upscaled to about this height before OCR
        min_conf: float = 60.0
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
        for t in range(0, n, c.every):
            words = frame_words(video.frames[t], upscale, c.min_conf, c.min_chars)
            if words:
                found[t] = words
                has[max(t - c.every // 2, 0) : t + c.every - c.every // 2] = True  # centred on the sample
        texts = sorted({" ".join(w) for w in found.values()})
        return Output(values={"frames": n, "text": runs(has, 1), "texts": texts[:50],
                              "text_fraction": float(has.mean())}, arrays={"has_text": has})
