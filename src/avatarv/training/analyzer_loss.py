"""A loss in the space the face metrics read: the frozen world analyzer's features and outputs on face crops.

The world VAE trained with L1 alone reduces the ~20-px mouth to a blurred smudge: the analyzer reads mouth
opening at r 0.96 on original frames and 0.06 after a round trip (issue #30), and weighting L1 inside the
mouth box did not fix it (pixel losses average the lip positions they cannot tell apart). This loss compares
the reconstruction with the original where the analyzer looks: both are cropped around the face exactly as
``WorldAnalyzer.predict`` crops (a square of ``CROP_SCALE`` × the landmark box, resampled to 96²; here with
``grid_sample`` so gradients reach the pixels), and

    L = Σ_l mean_c,h,w (n(φ_l(x̂)) − n(φ_l(x)))²      (LPIPS-style: features unit-normalised over channels)
      + mouth_weight · mean |ψ_mouth(x̂) − ψ_mouth(x)|  (the 20 lip landmarks and the mouth-opening signal)

with φ_l the FaceNet's intermediate feature maps and ψ its outputs (landmarks in crop units, signals). The
targets are the analyzer's reading of the original frames, not the world labels, so the loss asks "look the
same to the analyzer" and never asks the decoder for what the analyzer itself misreads. LPIPS (Zhang et al.,
2018) normalises each layer's activations over channels before the squared difference; we do the same with
uniform layer weights (no learned linear heads: nothing here to calibrate them on).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatarv.analyzer.model import CROP_SCALE, FACE_INPUT, SIGNALS
from avatarv.analyzer.predictor import WorldAnalyzer
from avatarv.training.methods.aux_losses import crop_faces as square_crops

LIP_POINTS = slice(48, 68)  # iBUG-68: outer 48–59, inner 60–67
MOUTH_SIGNAL = 136 + SIGNALS.index("mouth_open")  # column of the FaceNet output


def face_squares(landmarks: np.ndarray, scale: float = CROP_SCALE) -> np.ndarray:
    """``[T, 68, 2]`` landmarks (px) → ``[T, 3]`` (cx, cy, side) squares, as ``analyzer.crops.crop_square`` of
    the landmark box (the analyzer's own box net predicts that box; the labels give it exactly)."""
    lo, hi = landmarks.min(1), landmarks.max(1)  # [T, 2]
    side = (hi - lo).max(1) * scale  # [T]
    cx, cy = (lo[:, 0] + hi[:, 0]) / 2, (lo[:, 1] + hi[:, 1]) / 2 - 0.05 * side
    return np.stack([cx, cy, side], 1).astype(np.float32)


def crop_faces(video: torch.Tensor, squares: torch.Tensor, size: int = FACE_INPUT) -> torch.Tensor:
    """``video`` ``[B, 3, T, H, W]`` in [−1, 1], ``squares`` ``[B, T, 3]`` (cx, cy, side px) → ``[B·T, 3, size,
    size]`` in [0, 1], cut as ``analyzer.crops.crop`` cuts them (crop pixel u samples frame point
    cx − side/2 + (u + ½)·side/size, pixel centres at integers): the stage-3 losses' differentiable
    ``aux_losses.crop_faces`` on the square's own box."""
    b, c, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    sq = squares.reshape(b * t, 3).to(frames)
    half = sq[:, 2:] / 2
    return square_crops(frames, torch.cat([sq[:, :2] - half, sq[:, :2] + half], 1), size=size, scale=1.0)


class AnalyzerLoss(nn.Module):
    """Frozen ``FaceNet`` of the world analyzer as a perceptual loss (see the module docstring)."""

    def __init__(self, analyzer: WorldAnalyzer | None = None, layers: tuple[int, ...] = (1, 3, 5),
                 mouth_weight: float = 1.0):
        super().__init__()
        net = (analyzer or WorldAnalyzer.load()).face_net
        self.features, self.head = net.features.eval(), net.head.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        self.layers, self.mouth_weight = tuple(layers), mouth_weight

    def train(self, mode: bool = True) -> AnalyzerLoss:  # frozen: BatchNorm stays in eval whatever the caller does
        return super().train(False)

    def _run(self, crops: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats, x = [], crops - 0.5
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.layers:
                feats.append(x)
        return feats, self.head(x)

    def forward(self, recon: torch.Tensor, target: torch.Tensor, squares: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """``recon``, ``target`` ``[B, 3, T, H, W]`` in [−1, 1]; ``squares`` ``[B, T, 3]``. → (loss, logs)."""
        fr, out_r = self._run(crop_faces(recon, squares))
        with torch.no_grad():
            ft, out_t = self._run(crop_faces(target, squares))
        feat = sum(((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).sum(1).mean() for a, b in zip(fr, ft, strict=True))
        feat = feat / len(fr)
        lips_r = out_r[:, :136].reshape(-1, 68, 2)[:, LIP_POINTS]
        lips_t = out_t[:, :136].reshape(-1, 68, 2)[:, LIP_POINTS]
        mouth = (lips_r - lips_t).abs().mean() + (out_r[:, MOUTH_SIGNAL] - out_t[:, MOUTH_SIGNAL]).abs().mean()
        return feat + self.mouth_weight * mouth, {"analyzer_feat": feat.item(), "analyzer_mouth": mouth.item()}
