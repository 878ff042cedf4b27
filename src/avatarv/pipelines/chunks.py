"""ChunkPlan: how a long video is cut into overlapping chunks (seed "Chunk-Based Long-Form Generation").

Each chunk has c latent frames = 4(c − 1) + 1 video frames (Wan's causal VAE). Chunk n + 1 starts with
the last ``overlap`` latent frames of chunk n as its prefix: the last P = 4(overlap − 1) + 1 decoded frames
of chunk n are re-encoded and given as known latents (I2V mask), and those P frames are blended across
the seam. So chunk n + 1 starts P frames before chunk n ends, and every chunk after the first adds
4(c − overlap) new frames. The last chunk is shortened to the fewest latents that cover the end.
All arithmetic is on integers: frame i's audio starts at sample i·sr/fps exactly, with no drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def frames_to_latents(num_frames: int, stride: int = 4) -> int:
    """Fewest latent frames whose 4(k − 1) + 1 frames cover ``num_frames``."""
    return (max(num_frames, 1) - 1 + stride - 1) // stride + 1


def latents_to_frames(num_latents: int, stride: int = 4) -> int:
    return (num_latents - 1) * stride + 1


@dataclass(frozen=True)
class Chunk:
    index: int
    start_frame: int  # first video frame (global) of the chunk; its latent 0 is this frame
    num_latents: int
    prefix_latents: int  # 0 for the first chunk (reference-to-video), else overlap
    stride: int = 4

    @property
    def num_frames(self) -> int:
        return latents_to_frames(self.num_latents, self.stride)

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.num_frames

    @property
    def prefix_frames(self) -> int:
        return latents_to_frames(self.prefix_latents, self.stride) if self.prefix_latents else 0


@dataclass(frozen=True)
class ChunkPlan:
    total_frames: int
    chunk_latents: int = 41
    overlap_latents: int = 2
    fps: int = 25
    sample_rate: int = 16000
    stride: int = 4

    def __post_init__(self):
        if self.total_frames < 1:
            raise ValueError("a video needs at least one frame")
        if not 1 <= self.overlap_latents < self.chunk_latents:
            raise ValueError("need 1 ≤ overlap < chunk length (latent frames)")

    @classmethod
    def for_duration(cls, seconds: float, **kw) -> ChunkPlan:
        fps = kw.get("fps", 25)
        return cls(total_frames=max(1, round(seconds * fps)), **kw)

    @property
    def overlap_frames(self) -> int:
        return latents_to_frames(self.overlap_latents, self.stride)

    def chunks(self) -> list[Chunk]:
        out: list[Chunk] = []
        start = 0
        while True:
            prefix = 0 if not out else self.overlap_latents
            need = self.total_frames - start
            n_lat = min(self.chunk_latents, frames_to_latents(need, self.stride))
            n_lat = max(n_lat, prefix + 1)  # a continuation chunk makes at least one new latent
            chunk = Chunk(len(out), start, n_lat, prefix, self.stride)
            out.append(chunk)
            if chunk.end_frame >= self.total_frames:
                return out
            start = chunk.end_frame - self.overlap_frames

    def sample_range(self, start_frame: int, num_frames: int) -> tuple[int, int]:
        """Audio samples [a, b) of video frames start … start + num − 1 (exact rational arithmetic)."""
        per = Fraction(self.sample_rate, self.fps)
        return int(start_frame * per), int((start_frame + num_frames) * per)

    def total_samples(self) -> int:
        return self.sample_range(0, self.total_frames)[1]
