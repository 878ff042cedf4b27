"""Perceptual quality: a Q-Align adapter (the seed's metric) and an honest classical no-reference default.

**Q-Align** (Wu et al. 2024, Q-Future/Q-Align ``q_align/evaluate/scorer.py``): a multimodal LLM is asked
"How would you rate the quality of this image?" and the answer "The quality of the image is ..." is read at the
next token: softmax over the logits of the five level words ``excellent, good, fair, poor, bad`` only, weighted
5, 4, 3, 2, 1 (their scorer weights 1, 0.75, 0.5, 0.25, 0 and reports the [0, 1] value; ``4 x + 1`` is the
1..5 MOS scale the seed's table uses: GT 4.75). Images are padded to a square with the processor's mean colour
first (``expand2square``). Weights load from a local directory through transformers; nothing downloads.

**Classical NR index** (``classical-nr``): not Q-Align and not comparable to it; a transparent product of four
interpretable factors, each in [0, 1], measured on the luma of the frame at its own resolution:

- sharpness: ``1 - blur`` with the no-reference blur measure of Crete-Roffet et al. (2007, "The blur effect"):
  re-blur the image with a 9-tap box filter along x and along y and measure how much of the image's own
  neighbour differences the re-blur removes (a sharp image loses much, a blurred one little); restricted to
  edges (where the re-blurred image still steps by more than ``1 + sigma``) so noise does not pass for detail;
- noise: sigma from the median absolute value of the finest diagonal Haar wavelet band / 0.6745 (Donoho's
  robust estimator, insensitive to edges), mapped by ``exp(-(sigma / 5)^2)``;
- exposure: fraction of clipped pixels (<= 2 or >= 253) and distance of the mean from mid-grey;
- blockiness: luma steps across the 8-pixel grid of JPEG/MPEG blocks over the steps just beside it (median
  over grid lines; about 1 for natural images, 1.1-1.3 for h264 at crf 23, 1.6-2.7 for JPEG quality 30 and
  2.7-5.9 for quality 10 on the real clips), mapped by ``exp(-(ratio - 1.35) / 0.6)`` above 1.35.

The score is ``1 + 4 x product``, on the 1..5 range of Q-Align, but it is a different measure: tables must name
the backend beside the number. Measured on frames of the five real clips: each of blur (sigma 1 < 3), noise
(sigma 5 < 15) and JPEG (q 30 < 10) lowers it monotonically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.eval.inputs import as_video
from avatarv.eval.protocol import sample_frame_indices, trimmed_mean
from avatarv.media import Video

LEVEL_WORDS = ("excellent", "good", "fair", "poor", "bad")
LEVEL_WEIGHTS = np.array([5.0, 4.0, 3.0, 2.0, 1.0])


class QualityScorer(ABC):
    """Scores RGB frames; higher is better, range 1..5."""

    name = "quality"

    @abstractmethod
    def score_frames(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``frames`` ``[N,H,W,3]`` uint8 RGB -> ``[N]`` scores."""


# --- classical no-reference index ------------------------------------------------------------------------------------


def luminance(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 frame as float 0..255."""
    f = np.asarray(frame, dtype=np.float64)
    if f.ndim == 2:
        return f
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def noise_sigma(y: np.ndarray) -> float:
    """Noise standard deviation (Donoho & Johnstone 1994): median |HH| / 0.6745 of the finest Haar level."""
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    y = y[:h, :w]
    hh = (y[0::2, 0::2] - y[0::2, 1::2] - y[1::2, 0::2] + y[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def blur_extent(y: np.ndarray, noise: float = 0.0, taps: int = 9) -> float:
    """Crete-Roffet blur in [0, 1] (0 sharp, 1 blurred): the larger of the x and y values of
    ``sum(dF - max(0, dF - dB)) / sum(dF)`` over edge pixels, ``dF``/``dB`` the absolute neighbour differences
    of the image and of its ``taps``-box re-blur along that axis."""
    from scipy.ndimage import uniform_filter1d

    values = []
    for axis in (0, 1):
        blurred = uniform_filter1d(y, taps, axis=axis, mode="nearest")
        d_img = np.abs(np.diff(y, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        edges = d_blur > 1.0 + noise
        if not edges.any():
            values.append(1.0)  # nothing steps anywhere: flat or fully blurred
            continue
        # noise adds about E|N(0, 2 sigma^2)| = 1.128 sigma to every neighbour difference: not detail
        d_img, d_blur = np.maximum(d_img[edges] - 1.128 * noise, 0.0), d_blur[edges]
        lost = np.maximum(0.0, d_img - d_blur).sum()
        total = d_img.sum()
        values.append(float((total - lost) / total) if total > 0 else 1.0)
    return max(values)


def blockiness_ratio(y: np.ndarray, block: int = 8) -> float:
    """How much larger luma steps are across the block grid than beside it (1 for natural images).

    Per axis: the mean absolute step of every column (row) pair, a profile; for each grid line, its step over
    the mean step of the 3 pairs on either side; the median over grid lines (a few real edges that happen to
    sit on the grid do not count); then the mean of the two axes.
    """
    ratios = []
    for axis in (1, 0):
        profile = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)  # [n-1]: step between line j and j+1
        per_line = []
        for b in range(block - 1, len(profile) - 3, block):
            beside = np.r_[profile[max(b - 3, 0) : b], profile[b + 1 : b + 4]].mean()
            per_line.append((profile[b] + 0.5) / (beside + 0.5))  # +0.5 grey level: flat areas read as 1
        if per_line:
            ratios.append(float(np.median(per_line)))
    return float(np.mean(ratios)) if ratios else 1.0


@dataclass
class ClassicalFactors:
    """The four factors of the classical index for one frame, and the raw measurements behind them."""

    sharpness: float
    noise: float
    exposure: float
    blockiness: float
    raw: dict[str, float] = field(default_factory=dict)

    @property
    def index(self) -> float:
        return self.sharpness * self.noise * self.exposure * self.blockiness

    @property
    def score(self) -> float:
        return 1.0 + 4.0 * self.index


class ClassicalNRQuality(QualityScorer):
    """Classical no-reference quality index: 1 + 4 x sharpness x noise x exposure x blockiness (module doc)."""

    name = "classical-nr"

    def __init__(self, noise_scale: float = 5.0, block_onset: float = 1.35, block_scale: float = 0.6):
        self.noise_scale, self.block_onset, self.block_scale = noise_scale, block_onset, block_scale

    def factors(self, frame: np.ndarray) -> ClassicalFactors:
        y = luminance(frame)
        sigma = noise_sigma(y)
        blur = blur_extent(y, sigma)
        clipped = float(np.mean((y <= 2.0) | (y >= 253.0)))
        mean = float(y.mean())
        ratio = blockiness_ratio(y)
        noise = float(np.exp(-((sigma / self.noise_scale) ** 2)))
        # clipping costs everything at 50 % clipped; a mean far from mid-grey costs up to half
        exposure = max(0.0, 1.0 - 2.0 * clipped) * (1.0 - 0.5 * (abs(mean - 127.5) / 127.5) ** 2)
        block = float(np.exp(-max(ratio - self.block_onset, 0.0) / self.block_scale))
        raw = {"blur": blur, "noise_sigma": sigma, "clipped": clipped, "mean_luma": mean, "block_ratio": ratio}
        return ClassicalFactors(1.0 - blur, noise, float(exposure), block, raw)

    def score_frames(self, frames):
        return np.array([self.factors(f).score for f in frames], dtype=np.float64)


# --- Q-Align ------------------------------------------------------------------------------------------------------------

IMAGE_TOKEN = "<|image|>"
IMAGE_TOKEN_INDEX = -200  # mPLUG-Owl2's placeholder id, replaced by visual tokens inside the model
QALIGN_PROMPT = "USER: How would you rate the quality of this image?\n<|image|>\nASSISTANT: The quality of the image is"


def level_token_ids(tokenizer, words: Sequence[str] = LEVEL_WORDS) -> list[int]:
    """Token id that starts each level word. Q-Align takes ``tokenizer(words)["input_ids"][i][1]``: the token
    after LLaMA's BOS, i.e. the first token of the word encoded without special tokens, which is what we take."""
    ids = []
    for word in words:
        toks = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not toks:
            raise ValueError(f"tokenizer gives no token for {word!r}")
        ids.append(int(toks[0]))
    if len(set(ids)) != len(ids):
        raise ValueError(f"level words share first tokens {ids}: this tokenizer cannot score Q-Align levels")
    return ids


def prompt_input_ids(tokenizer, prompt: str = QALIGN_PROMPT) -> list[int]:
    """Prompt ids with ``IMAGE_TOKEN_INDEX`` where ``<|image|>`` is (mPLUG-Owl2's ``tokenizer_image_token``:
    BOS once, then the text chunks tokenised without special tokens)."""
    chunks = prompt.split(IMAGE_TOKEN)
    ids: list[int] = []
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        ids.append(int(bos))
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(int(t) for t in tokenizer(chunk, add_special_tokens=False)["input_ids"])
    return ids


def level_scores(last_logits: np.ndarray, level_ids: Sequence[int]) -> np.ndarray:
    """Q-Align's score from next-token logits ``[B, V]``: softmax over the 5 level logits, dot (5, 4, 3, 2, 1)."""
    z = np.asarray(last_logits, dtype=np.float64)[:, list(level_ids)]  # [B,5]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p @ LEVEL_WEIGHTS


def expand_to_square(frame: np.ndarray, fill: Sequence[int]) -> np.ndarray:
    """Pad to a square, content centred, with ``fill`` (Q-Align's ``expand2square``)."""
    h, w = frame.shape[:2]
    if h == w:
        return frame
    side = max(h, w)
    out = np.empty((side, side, 3), dtype=frame.dtype)
    out[:] = np.asarray(fill, dtype=frame.dtype)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = frame
    return out


class QAlignScorer(QualityScorer):
    """Q-Align on frames. ``model(input_ids=[B,L], images=[B,3,S,S]) -> .logits or ["logits"] [B,L,V]`` (mPLUG-Owl2's
    forward), ``tokenizer`` a Hugging Face tokenizer, ``image_processor(images, return_tensors="pt")`` giving
    ``pixel_values`` with ``image_mean``. Build from a local checkpoint with :meth:`from_pretrained`."""

    name = "q-align"

    def __init__(self, model, tokenizer, image_processor, batch_size: int = 4, dtype=None):
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.batch_size, self.dtype = batch_size, dtype
        self.level_ids = level_token_ids(tokenizer)
        self.input_ids = prompt_input_ids(tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> QAlignScorer:
        """Loads a local Q-Align / One-Align directory (``trust_remote_code``: the mPLUG-Owl2 model class ships
        with the weights). Raises ``InputError`` when the folder is missing."""
        path = Path(path)
        if not path.is_dir():
            raise InputError("Q-Align weights folder not found", path)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessor

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=True, torch_dtype=torch.float32)
        processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
        return cls(model.eval(), tokenizer, processor, **kwargs)

    def score_frames(self, frames):
        import torch

        fill = tuple(int(x * 255) for x in getattr(self.image_processor, "image_mean", (0.5, 0.5, 0.5)))
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = [expand_to_square(np.asarray(f), fill) for f in frames[start : start + self.batch_size]]
            pixels = self.image_processor(batch, return_tensors="pt")["pixel_values"]
            if self.dtype is not None:
                pixels = pixels.to(self.dtype)
            ids = torch.tensor([self.input_ids] * len(batch), dtype=torch.long)
            with torch.inference_mode():
                result = self.model(input_ids=ids, images=pixels)
            logits = result["logits"] if isinstance(result, dict) else result.logits
            out.append(level_scores(logits[:, -1].float().cpu().numpy(), self.level_ids))
        return np.concatenate(out) if out else np.zeros(0)


# --- protocol -------------------------------------------------------------------------------------------------------------


def get_quality_scorer(name: str = "classical-nr", weights: str | Path | None = None) -> QualityScorer:
    if name == "classical-nr":
        return ClassicalNRQuality()
    if name == "q-align":
        if weights is None:
            raise InputError("q-align needs a local weights folder (--weights DIR); nothing is downloaded")
        return QAlignScorer.from_pretrained(weights)
    raise InputError(f"unknown quality backend {name!r} (choose from classical-nr, q-align)")


def video_quality(source: str | Path | Video, scorer: QualityScorer | None = None) -> dict:
    """Per-frame quality at 2 fps and its 10 % trimmed mean."""
    scorer = scorer or ClassicalNRQuality()
    video = as_video(source)
    idx = sample_frame_indices(video.num_frames, video.fps)
    scores = scorer.score_frames(video.frames[idx])
    return {
        "quality": trimmed_mean(scores),
        "backend": scorer.name,
        "n_frames": int(len(idx)),
        "per_frame": [float(s) for s in scores],
        "frame_indices": [int(i) for i in idx],
    }
