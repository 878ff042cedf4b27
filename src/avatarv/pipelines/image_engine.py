"""Identity-preserving image engine (seed: "Identity-Preserving Image Engine").

Before the video, a scene image anchors the first chunk. Rather than one reference frame, the engine picks
frames that span the person's poses and expressions (farthest-point sampling over frame embeddings) and
generates the scene image with the DiT in single-frame mode, attending to those frames as its reference.
A scene image given by the user bypasses it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avatarv.errors import InputError
from avatarv.models.dit import RefInputs


def frame_embeddings(frames: np.ndarray, size: int = 16) -> np.ndarray:
    """Pose/expression descriptors: the face crop at 16×16 grey, zero-mean unit-norm. ``[T, size²]``."""
    import cv2

    grey = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
                     for f in frames]).reshape(len(frames), -1).astype(np.float64)
    grey -= grey.mean(axis=1, keepdims=True)
    return grey / np.maximum(np.linalg.norm(grey, axis=1, keepdims=True), 1e-8)


def farthest_point_sampling(emb: np.ndarray, k: int, candidates: np.ndarray | None = None) -> list[int]:
    """k indices spread over the embedding space: start at the medoid, then repeatedly the farthest point."""
    idx = np.arange(len(emb)) if candidates is None else np.flatnonzero(candidates)
    if len(idx) == 0:
        raise ValueError("no candidate frames")
    pts = emb[idx]
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    chosen = [int(np.argmin(dist.sum(1)))]
    nearest = dist[chosen[0]].copy()
    while len(chosen) < min(k, len(idx)):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, dist[nxt])
    return [int(idx[c]) for c in chosen]


def load_scene_image(path: str | Path, resolution: int) -> np.ndarray:
    """A user scene image: centre square crop, resized. ``[R, R, 3]`` uint8 RGB."""
    import cv2

    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if img is None:
        raise InputError("cannot read the scene image (missing, or not an image)", path)
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = cv2.resize(img[top : top + side, left : left + side], (resolution, resolution), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@torch.no_grad()
def generate_scene_image(pipe, frames: np.ndarray, face_found: np.ndarray, generator: torch.Generator,
                         steps: int = 8, num_views: int = 4, text: torch.Tensor | None = None,
                         ) -> tuple[np.ndarray, list[int]]:
    """Scene image ``[R, R, 3]`` from the DiT in single-frame mode, conditioned on diverse reference frames
    and (``text`` ``[1, L, text_dim]``) a scene prompt."""
    from avatarv.models.dit.conditions import Conditions
    from avatarv.pipelines.sampling import DiTVelocity, SamplingOptions

    views = farthest_point_sampling(frame_embeddings(frames), num_views, candidates=face_found)
    # each view is encoded alone (a one-frame latent, like an image), then stacked as reference frames
    latents = torch.cat([pipe.vae.encode(frames[i : i + 1]) for i in views], dim=2)  # [1, z, k, h, w]
    ref = RefInputs(latents)
    s = pipe.cfg.resolution // pipe.cfg.vae.spatial_stride
    x = torch.randn(1, pipe.cfg.dit.latent_channels, 1, s, s, generator=generator)
    velocity = DiTVelocity(pipe.dit, Conditions(text=text, ref=[ref]), precision=pipe.autocast)
    options = SamplingOptions(steps=steps, sampler="euler", shift=1.0)
    out = options.make_sampler()(velocity, (x,), options.schedule(s * s // 4), generator=generator)[0]
    return pipe.vae.decode(out)[0], views
