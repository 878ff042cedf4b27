"""The world analyzer: two small CNNs that read per-frame signals from pixels.

``BoxNet`` finds the face box in the whole frame (64² input). ``FaceNet`` reads a square crop around that
box (96² input) and predicts the 68 landmarks (in crop coordinates, [-1, 1]), head pose, mouth openness,
lid closure, smile and gaze. Both are plain conv-BN-ReLU stacks with a linear head: small enough to train on
one CPU thread in minutes and to run at hundreds of frames per second.
"""

from __future__ import annotations

import torch
import torch.nn as nn

BOX_INPUT = 64
FACE_INPUT = 96
CROP_SCALE = 1.5  # the crop side is 1.5 × the larger side of the landmark box
# FaceNet outputs, in order: 136 landmark coordinates, then these scalars
SIGNALS = ("yaw", "pitch", "roll", "mouth_open", "blink", "smile", "gaze_x", "gaze_y")
POSE_SCALE = 10.0  # degrees per output unit


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BoxNet(nn.Module):
    """[B, 3, 64, 64] in [0, 1] → [B, 4] face box (x0, y0, x1, y1) as fractions of the frame."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 2 * w, 1), _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1), _block(4 * w, 8 * w, 2),  # [B, 8w, 4, 4]
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * w * 16, 128), nn.ReLU(inplace=True), nn.Linear(128, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5))


class FaceNet(nn.Module):
    """[B, 3, 96, 96] crop in [0, 1] → [B, 136 + 8]: landmarks in [-1, 1] crop coordinates, then SIGNALS."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 2 * w, 1), _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1), _block(4 * w, 8 * w, 2), _block(8 * w, 8 * w, 1),  # [B, 8w, 6, 6]
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * w * 36, 256), nn.ReLU(inplace=True), nn.Linear(256, 136 + len(SIGNALS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5))
