"""Media I/O: read any common video/audio into numpy, write h264/AAC mp4 (atomic or streamed), probe.

Public API::

    from avatarv.media import read_video, read_audio, write_mp4, StreamingMp4Writer, probe, Video
"""

from avatarv.media.audio import SAMPLE_RATE
from avatarv.media.read import Video, read_audio, read_video
from avatarv.media.stream import StreamingMp4Writer
from avatarv.media.write import write_mp4

__all__ = ["SAMPLE_RATE", "StreamingMp4Writer", "Video", "read_audio", "read_video", "write_mp4"]
