"""``StreamingMp4Writer``: an mp4 that is playable after every append, for long generations.

The file is fragmented MP4: ``ftyp+moov`` (no samples) then one ``moof+mdat`` fragment per append.
Every append is encoded by persistent h264/AAC encoders (x264 ``zerolatency``: each frame in gives its
packet out, so nothing of an append is left inside the encoder; each append starts with an IDR frame so
its fragment decodes on its own). The packets are muxed by FFmpeg into a small fMP4 in memory, which is
closed (so FFmpeg knows the duration of the last sample) and its fragment appended to the file with its
decode times and sequence number shifted (``fmp4.retime_fragments``). A reader opening the file after
``append`` returns sees every appended frame. The AAC encoder keeps ≤ 3 codec frames (≤ 192 ms at
16 kHz) back until the next append or ``close``, so mid-stream the audio ends slightly before the video.

On an exception inside ``with StreamingMp4Writer(...)``, the file written so far is renamed to
``<stem>.partial<suffix>`` (it stays playable up to its last complete append, useful for debugging a long
run) and nothing is left at ``path``: a file at the final name is always a finished one, or one that
is still being written.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avatarv.media.audio import SAMPLE_RATE
from avatarv.media.encoder import check_audio, check_frames, fps_fraction
from avatarv.media.fmp4 import retime_fragments, split_init_and_fragments
from avatarv.media.write import temp_path_for

_FIRST_FLAGS = "frag_keyframe+delay_moov+default_base_moof"  # moov after the first packets: audio edit list
_NEXT_FLAGS = "frag_keyframe+empty_moov+default_base_moof"  # its moov is thrown away


def partial_path_for(path: Path) -> Path:
    """``out.mp4`` → ``out.partial.mp4``: where an interrupted stream is left."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class StreamingMp4Writer:
    """Append ``[T, H, W, 3]`` uint8 frames and ``[N]`` float32 mono audio; the file plays after each append.

    ``sample_rate=None`` writes video only. If the writer has audio and an append brings none, silence of
    the frames' duration is written so audio and video stay in step.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        sample_rate: int | None = SAMPLE_RATE,
        crf: int = 20,
        preset: str = "veryfast",
    ):
        if width % 2 or height % 2:
            raise ValueError(f"h264 yuv420p needs an even frame size, got {width}x{height}")
        self.path = Path(path)
        self.fps = fps_fraction(fps)
        self.width, self.height = width, height
        self.sample_rate = sample_rate
        self.frames_written = 0
        self.samples_written = 0
        self.closed = False
        self._started = False  # init segment written to self.path
        self._sequence = 1
        self._first_dts: dict[int, Fraction] = {}  # stream index -> seconds of its first packet
        self._pending: list[tuple[int, av.Packet]] = []  # (stream index, packet) not yet in the file

        # The encoders live on streams of a throw-away mp4 container, so they are configured exactly as
        # the muxer wants (global headers) and serve as templates for each fragment's container.
        self._template = av.open(io.BytesIO(), mode="w", format="mp4")
        self._video = self._template.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.time_base = 1 / self.fps
        self._video.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency", "forced-idr": "1"}
        self._audio = None
        if sample_rate is not None:
            self._audio = self._template.add_stream("aac", rate=sample_rate, layout="mono")
            self._audio.codec_context.time_base = Fraction(1, sample_rate)
        self._template.start_encoding()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # -- public -------------------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Seconds of video appended so far."""
        return self.frames_written / float(self.fps)

    def append(self, frames: np.ndarray, audio_chunk: np.ndarray | None = None) -> None:
        """Encode and append ``frames`` [T, H, W, 3] uint8 (T ≥ 1) and ``audio_chunk`` [N] float32 mono."""
        if self.closed:
            raise ValueError("append() on a closed StreamingMp4Writer")
        frames = check_frames(frames, self.width, self.height)
        audio_chunk = check_audio(audio_chunk)
        if frames.shape[0] == 0:
            raise ValueError("append() needs at least one frame")
        if audio_chunk is not None and self._audio is None:
            raise ValueError("audio given but the writer was opened without audio (sample_rate=None)")
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames_written
            if i == 0:  # each append starts a fragment that decodes on its own
                frame.pict_type = av.video.frame.PictureType.I
            self._pending += [(0, p) for p in self._video.encode(frame)]
            self.frames_written += 1
        if self._audio is not None:
            if audio_chunk is None:  # keep audio in step with video
                target = round(self.frames_written / self.fps * self.sample_rate)
                audio_chunk = np.zeros(max(0, target - self.samples_written), np.float32)
            if audio_chunk.size:
                self._pending += [(1, p) for p in self._audio.encode(self._audio_frame(audio_chunk))]
        self._write_pending(final=False)

    def close(self) -> None:
        """Flush the encoders and write the last fragment. The file is complete afterwards."""
        if self.closed:
            return
        self._pending += [(0, p) for p in self._video.encode(None)]
        if self._audio is not None:
            self._pending += [(1, p) for p in self._audio.encode(None)]
        self._write_pending(final=True)
        self._close_template()
        self.closed = True

    def abort(self) -> Path | None:
        """Stop after an error: the file so far moves to ``<stem>.partial<suffix>`` (returned), if any."""
        self._close_template()
        self.closed = True
        if self._started and self.path.exists():
            partial = partial_path_for(self.path)
            os.replace(self.path, partial)
            return partial
        return None

    def __enter__(self) -> StreamingMp4Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals ----------------------------------------------------------------------------------

    def _audio_frame(self, audio: np.ndarray) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.samples_written
        frame.time_base = Fraction(1, self.sample_rate)
        self.samples_written += audio.size
        return frame

    def _write_pending(self, final: bool) -> None:
        """Mux pending packets into one in-memory fMP4 and append its fragment(s) to the file."""
        has_video = any(s == 0 for s, _ in self._pending)
        has_audio = self._audio is None or 1 in self._first_dts or any(s == 1 for s, _ in self._pending)
        # The first fragment must hold both tracks: its moov carries the audio priming edit list.
        if not self._pending or not final and not (has_video and has_audio):
            return
        packets, self._pending = self._pending, []
        for index, packet in packets:
            if index not in self._first_dts:
                self._first_dts[index] = packet.dts * packet.time_base
        first_in_chunk: dict[int, Fraction] = {}
        for index, packet in packets:
            first_in_chunk.setdefault(index, packet.dts * packet.time_base)

        buffer = io.BytesIO()
        flags = _NEXT_FLAGS if self._started else _FIRST_FLAGS
        out = av.open(buffer, mode="w", format="mp4", options={"movflags": flags})
        out.flags |= av.container.Flags.bitexact.value
        templates = [self._video] + ([self._audio] if self._audio is not None else [])
        streams = [out.add_stream_from_template(t, opaque=True) for t in templates]
        for index, packet in packets:
            if self._started:
                # Every track of a later fragment file starts at decode time 0 (we shift it back below);
                # left at their true times, FFmpeg re-aligns the tracks against each other and skews them.
                shift = round(first_in_chunk[index] / packet.time_base)
                packet.dts -= shift
                packet.pts -= shift
            packet.stream = streams[index]
            out.mux(packet)
        out.close()
        init, fragments = split_init_and_fragments(buffer.getvalue())

        # Each small file starts every track at decode time 0: shift to the track's time in the stream.
        offsets = {}
        for index, stream in enumerate(streams):
            if index in first_in_chunk:
                seconds = first_in_chunk[index] - self._first_dts[index]
                offsets[index + 1] = round(seconds / stream.time_base)  # track id = index + 1
        fragments, self._sequence = retime_fragments(fragments, self._sequence, offsets)

        if not self._started:
            # The file appears atomically with its first playable fragment.
            tmp = temp_path_for(self.path)
            try:
                tmp.write_bytes(init + fragments)
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            self._started = True
        else:
            with open(self.path, "ab") as fh:
                fh.write(fragments)

    def _close_template(self) -> None:
        try:
            self._template.close()
        except Exception:  # it holds no output anyone reads
            pass
