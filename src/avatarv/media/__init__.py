"""Media I/O: read any common video/audio into numpy, write h264/AAC mp4 (atomic or streamed), probe.

Public API::

    from avatarv.media import read_video, read_audio, write_mp4, StreamingMp4Writer, probe, Video

Bad input raises ``avatarv.errors.InputError`` naming the file (the CLI prints ``avatarv: FILE: ...``).
"""

from avatarv.media.audio import SAMPLE_RATE
from avatarv.media.faces import FaceBox, detect_faces
from avatarv.media.probe import MediaInfo, StreamInfo, probe
from avatarv.media.read import Video, read_audio, read_video
from avatarv.media.sample import sample_frames
from avatarv.media.stream import StreamingMp4Writer
from avatarv.media.write import write_mp4

__all__ = [
    "SAMPLE_RATE",
    "FaceBox",
    "MediaInfo",
    "StreamInfo",
    "StreamingMp4Writer",
    "Video",
    "detect_faces",
    "probe",
    "read_audio",
    "read_video",
    "sample_frames",
    "write_mp4",
]
