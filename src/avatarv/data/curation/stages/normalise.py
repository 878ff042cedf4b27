"""Normalise: every input to 25 fps, longest side at most 640 px (even sizes), h264 + AAC (seed: Data Curation)."""

from __future__ import annotations

from dataclasses import dataclass

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import mp4_bytes
from avatarv.errors import InputError
from avatarv.media import read_video


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale so the longest side is at most ``max_side`` (never up), both sides even."""
    s = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


class Normalise(Stage):
    name = "normalise"
    outputs = ("video.mp4",)
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        max_side: int = 640
        fps: float = 25.0
        crf: int = 18
        require_audio: bool = True  # talking-head data needs speech: an audio-less file fails with a reason
        # "mp4" (h264 + AAC) or "npy" (lossless frames.npy + audio.npy: byte-reproducible, for small inputs;
        # libx264 is not: the first encode in a process under CPU load can give other bytes)
        store: str = "mp4"

    def process(self, item: Item) -> Output:
        # decode upright at the source size, then area-resize (rotation metadata is applied by read_video)
        video = read_video(item.source, fps=self.config.fps, require_audio=self.config.require_audio)
        if video.audio is not None and video.audio.size == 0 and self.config.require_audio:
            raise InputError("audio stream has no samples", item.source)
        h, w = video.frames.shape[1:3]
        if max(h, w) > self.config.max_side or h % 2 or w % 2:
            import cv2
            import numpy as np

            tw, th = target_size(w, h, self.config.max_side)
            video.frames = np.stack([cv2.resize(f, (tw, th), interpolation=cv2.INTER_AREA) for f in video.frames])
        h, w = video.frames.shape[1:3]
        values = {"frames": video.num_frames, "fps": video.fps, "width": w, "height": h,
                  "duration_s": video.duration, "has_audio": video.audio is not None,
                  "sample_rate": video.sample_rate, "store": self.config.store}
        if self.config.store == "npy":
            arrays = {"frames": video.frames}
            if video.audio is not None:
                arrays["audio"] = video.audio
            return Output(values=values, arrays=arrays)
        data = mp4_bytes(video.frames, video.fps, video.audio, video.sample_rate, self.config.crf)
        return Output(values=values, files={"video.mp4": data})
