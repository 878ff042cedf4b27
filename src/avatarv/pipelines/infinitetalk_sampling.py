"""InfiniteTalk's long-video recipe, piece by piece (MeiGen-AI/InfiniteTalk ``wan/multitalk.py: generate``,
``wan/utils/multitalk_utils.py``, ``generate_infinitetalk.py``), written as small functions the pipeline composes:
aspect buckets, resize-and-centre-crop, the reversed-tail audio padding (the per-frame wav2vec window gather is
``models/encoders/infinitetalk_audio.audio_windows``),
the speaker masks, the guidance passes, the known-head velocity and colour matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from avatarv.diffusion import GuidanceScales

# InfiniteTalk's aspect buckets (multitalk_utils.py ASPECT_RATIO_627 / ASPECT_RATIO_960): h/w ratio → (h, w)
BUCKETS: dict[str, dict[float, tuple[int, int]]] = {
    "infinitetalk-480": {
        0.26: (320, 1216), 0.38: (384, 1024), 0.50: (448, 896), 0.67: (512, 768), 0.82: (576, 704),
        1.00: (640, 640), 1.22: (704, 576), 1.50: (768, 512), 1.86: (832, 448), 2.00: (896, 448),
        2.50: (960, 384), 2.83: (1088, 384), 3.60: (1152, 320), 3.80: (1216, 320), 4.00: (1280, 320)},
    "infinitetalk-720": {
        0.22: (448, 2048), 0.29: (512, 1792), 0.36: (576, 1600), 0.45: (640, 1408), 0.55: (704, 1280),
        0.63: (768, 1216), 0.76: (832, 1088), 0.88: (896, 1024), 1.00: (960, 960), 1.14: (1024, 896),
        1.31: (1088, 832), 1.50: (1152, 768), 1.58: (1216, 768), 1.82: (1280, 704), 1.91: (1344, 704),
        2.20: (1408, 640), 2.30: (1472, 640), 2.67: (1536, 576), 2.89: (1664, 576), 3.62: (1856, 512),
        3.75: (1920, 512)},
}
DEFAULT_SHIFT = {"infinitetalk-480": 7.0, "infinitetalk-720": 11.0}  # generate_infinitetalk.py sample_shift
# Wan2.1's default negative prompt (wan/configs: sample_neg_prompt, the English version InfiniteTalk ships)
NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards")


def pick_bucket(height: int, width: int, size: str) -> tuple[int, int]:
    """The bucket (h, w) whose ratio is nearest the source's h / w (ties: the first in the table, as sorted())."""
    if size not in BUCKETS:
        raise ValueError(f"size must be one of {', '.join(BUCKETS)}, got {size!r}")
    ratio = height / width
    best = sorted(BUCKETS[size], key=lambda r: abs(r - ratio))[0]
    return BUCKETS[size][best]


def resize_and_centercrop(frame: np.ndarray, target: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``[H, W, 3]`` uint8 (or a ``[H, W]`` mask) → ``[h, w(, 3)]``: scaled to cover the target (bilinear; nearest
    for masks, as InfiniteTalk resizes its mask tensors), centre-cropped (``resize_and_centercrop``;
    torchvision's centre crop rounds the offset, so does this)."""
    import cv2

    th, tw = target
    oh, ow = frame.shape[:2]
    scale = max(th / oh, tw / ow)
    fh, fw = math.ceil(scale * oh), math.ceil(scale * ow)
    resized = cv2.resize(frame, (fw, fh), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
    top, left = int(round((fh - th) / 2.0)), int(round((fw - tw) / 2.0))
    return np.ascontiguousarray(resized[top: top + th, left: left + tw])


def pad_reversed_tail(emb: torch.Tensor, end: int) -> torch.Tensor:
    """InfiniteTalk's padding when a chunk runs past the audio: the last ``end − len + 3`` frames, reversed,
    appended (``add_audio_emb = flip(emb[-miss:])``). ``emb`` ``[T, ...]``; unchanged when ``end < T``."""
    if end < len(emb):
        return emb
    miss = end - len(emb) + 3
    return torch.cat([emb, torch.flip(emb[-miss:], dims=[0])], dim=0)


def speaker_masks(height: int, width: int, speakers: int, boxes: list[tuple[int, int, int, int]] | None = None,
                  face_scale: float = 0.05) -> torch.Tensor:
    """``[3, H, W]`` float masks: speaker 1, speaker 2, background (multitalk.py "construct human mask").

    One speaker: all ones (unused). Two: the boxes ``(x_min, y_min, x_max, y_max)`` as InfiniteTalk indexes them
    (``mask[x_min:x_max, y_min:y_max]``: x along rows), or the default left / right halves inset by
    ``face_scale``; background = outside every speaker."""
    if speakers == 1:
        return torch.ones(3, height, width)
    masks = []
    if boxes is not None:
        if len(boxes) != 2:
            raise ValueError(f"two speakers need two boxes, got {len(boxes)}")
        for x0, y0, x1, y1 in boxes:
            m = torch.zeros(height, width)
            m[int(x0):int(x1), int(y0):int(y1)] = 1
            masks.append(m)
    else:
        x0, x1 = int(height * face_scale), int(height * (1 - face_scale))
        half = width // 2
        for offset in (0, half):
            m = torch.zeros(height, width)
            m[x0:x1, int(half * face_scale + offset): int(half * (1 - face_scale) + offset)] = 1
            masks.append(m)
    background = (masks[0] + masks[1] == 0).float()
    return torch.stack([*masks, background])


def infinitetalk_guidance(text_scale: float, audio_scale: float) -> GuidanceScales:
    """InfiniteTalk's CFG as nested guidance passes (``diffusion.guidance``), the reference always kept.

    text ≠ 1: three passes, ``uncond + t·(cond − drop_text) + a·(drop_text − uncond)``; text = 1: two passes,
    ``drop_audio + a·(cond − drop_audio)`` (multitalk.py's two forms)."""
    if math.isclose(text_scale, 1.0):
        return GuidanceScales({"ref": 1.0, "text": 1.0, "audio": audio_scale}, ("ref", "text", "audio"))
    return GuidanceScales({"ref": 1.0, "audio": audio_scale, "text": text_scale}, ("ref", "audio", "text"))


class KnownHead:
    """A velocity whose input has its leading latent frames replaced by the known (motion-frame) latents before
    every model call, as InfiniteTalk writes ``latent[:, :k] = latent_motion_frames`` before each step. The
    Euler update is elementwise, so the other frames evolve exactly as in InfiniteTalk's loop."""

    def __init__(self, velocity: Callable, known: torch.Tensor):
        self.velocity, self.known = velocity, known  # known [1, z, k, h, w]

    def __call__(self, x, sigma):
        video = x[0].clone()
        video[:, :, : self.known.shape[2]] = self.known.to(video.dtype)
        return self.velocity((video, *x[1:]), sigma)


def match_colors(frames: np.ndarray, reference: np.ndarray, strength: float) -> np.ndarray:
    """Per-frame Lab mean/std transfer towards ``reference``, blended by ``strength``
    (``match_and_blend_colors``; Lab through OpenCV instead of scikit-image). frames ``[T, H, W, 3]`` float in
    [0, 1], reference ``[H, W, 3]`` float in [0, 1] → ``[T, H, W, 3]`` float in [0, 1]."""
    import cv2

    if strength == 0.0:
        return frames
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour correction strength must be in [0, 1], got {strength}")
    ref_lab = cv2.cvtColor(np.clip(reference, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    ref_mean, ref_std = ref_lab.reshape(-1, 3).mean(0), ref_lab.reshape(-1, 3).std(0)
    t, h, w, _ = frames.shape
    clipped = np.clip(frames, 0, 1).astype(np.float32)
    # all frames in one conversion each way (a [T·H, W, 3] image; OpenCV converts pixel by pixel), per-frame
    # statistics from the [T, H·W, 3] view: the same arithmetic as a loop over frames (bit-identical), ~10 % faster
    lab = cv2.cvtColor(clipped.reshape(t * h, w, 3), cv2.COLOR_RGB2Lab).reshape(t, h * w, 3)
    mean, std = lab.mean(1, keepdims=True), lab.std(1, keepdims=True)  # [T, 1, 3]
    safe = np.where(std == 0, 1.0, std)
    corrected = np.where(std == 0, ref_mean, (lab - mean) * (ref_std / safe) + ref_mean).astype(np.float32)
    rgb = np.clip(cv2.cvtColor(corrected.reshape(t * h, w, 3), cv2.COLOR_Lab2RGB), 0, 1).reshape(t, h, w, 3)
    out = ((1 - strength) * clipped + strength * rgb).astype(np.float32)
    return out


__all__ = ["BUCKETS", "DEFAULT_SHIFT", "NEGATIVE_PROMPT", "KnownHead", "infinitetalk_guidance", "match_colors",
           "pad_reversed_tail", "pick_bucket", "resize_and_centercrop", "speaker_masks"]
