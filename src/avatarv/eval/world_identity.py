"""The world identity embedder: a small CNN trained with an ArcFace loss on world identities (backend ``world``).

Input: a square crop around a face box (side 1.3 x the box's longer side, centred on the box) resized to
64 x 64 RGB; output: a unit 128-d embedding compared by cosine, as ArcFace embeddings are. Faces are found by
the same detector as the other backends (dlib HOG, which finds world faces at 128-256 px), so only the
recogniser differs between backends.

ArcFace (Deng et al. 2019, eq. 3): logits ``s cos(theta_y + m)`` for the true class, ``s cos(theta_j)`` for
the others, ``theta`` the angle between the normalised embedding and the normalised class weight.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatarv.eval.identity import IdentityEmbedder
from avatarv.eval.small_weights import load_small_weights, save_small_weights

INPUT = 64
CROP_SCALE = 1.3
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "eval" / "world_identity.safetensors"  # package data


def face_crop(frame: np.ndarray, box, size: int = INPUT, scale: float = CROP_SCALE) -> np.ndarray:
    """Square crop of ``frame`` around ``box = (x0, y0, x1, y1)``, side ``scale * max(w, h)``, to size² (RGB)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    k = size / side
    m = np.array([[k, 0, (side / 2 - cx) * k - 0.5], [0, k, (side / 2 - cy) * k - 0.5]], np.float32)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(frame), m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class IdentityNet(nn.Module):
    """[B,3,64,64] in 0..1 -> [B,D] unit embeddings."""

    def __init__(self, width: int = 32, embed_dim: int = 128):
        super().__init__()
        w = width
        # 64 -> 32 -> 16 -> 8 -> 4 (one strided conv per scale: ~13 M multiply-adds per face)
        self.features = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w))
        self.embed = nn.Linear(4 * w * 16, embed_dim)  # [B, 4w*4*4] -> [B,D]
        self.norm = nn.BatchNorm1d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x - 0.5).flatten(1)
        return F.normalize(self.norm(self.embed(f)), dim=-1)


class ArcFaceHead(nn.Module):
    """Additive angular margin softmax: class centres on the sphere, margin ``m`` on the true class' angle."""

    def __init__(self, embed_dim: int, n_classes: int, scale: float = 30.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, embed_dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # emb [B,D] unit -> loss
        cos = emb @ F.normalize(self.weight, dim=-1).T  # [B,C]
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = F.one_hot(labels, cos.shape[1]).bool()
        logits = torch.where(target, torch.cos(theta + self.margin), cos) * self.scale
        return F.cross_entropy(logits, labels)


class WorldIdentityEmbedder(IdentityEmbedder):
    """The ``world`` backend: dlib HOG (or any) detector + :class:`IdentityNet` on 64 x 64 crops."""

    name = "world"
    dim = 128

    def __init__(self, weights: str | Path | None = None, detector=None):
        super().__init__(detector)
        self.net = load_identity_net(weights)
        self.dim = self.net.embed.out_features

    @torch.no_grad()
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
        return self.net(x).double().numpy()

    def embed_faces(self, frame, boxes):
        if not boxes:
            return np.zeros((0, self.dim))
        return self.embed_crops(np.stack([face_crop(frame, b) for b in boxes]))


def save_identity_net(net: IdentityNet, path: str | Path, meta: dict) -> Path:
    return save_small_weights(net, path, meta)


def load_identity_net(path: str | Path | None = None) -> IdentityNet:
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    return load_small_weights(path, lambda meta: IdentityNet(int(meta.get("width", 32)), int(meta.get("embed_dim", 128))), "world identity net", "make train-identity")
