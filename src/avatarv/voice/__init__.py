"""Voice engine (seed: "LLM-Based Voice Cloning Engine"): text → speech in a user's voice, offline.

Public API::

    from avatarv.voice import speak, profile, prepare, text_to_speech, VoiceProfile

- ``profile(sample) -> VoiceProfile``: measure ≥ 5 s of someone's speech (pitch, rate, loudness,
  spectral envelope, speaker embedding); ``VoiceProfile.save/load`` as JSON.
- ``speak(text, voice_profile=None) -> [N] float32 16 kHz``: piper (default) or espeak-ng (fallback),
  matched to the profile by WORLD analysis/synthesis
  (formant scaling, tilt, breathiness, residual EQ, F0 median/range, rate, pauses).
- ``prepare(audio) -> [N] float32 16 kHz``: pass-through of user speech at -23 LUFS.
- ``avatarv.voice.cloning.PocketTTSCloner``: zero-shot neural cloning from local weights;
  ``avatarv.voice.engines.engine_status()``: which engines run here and why the others do not.
- ``avatarv.voice.protocol``: the tuning and held-out speakers of ``benchmarks/voice.py`` (issue #34).
"""

from avatarv.voice.audio import SAMPLE_RATE, TARGET_LUFS, loudness, prepare, write_wav
from avatarv.voice.engine import load_voice, speak, text_to_speech
from avatarv.voice.profile import VoiceProfile, profile

__all__ = [
    "SAMPLE_RATE",
    "TARGET_LUFS",
    "VoiceProfile",
    "load_voice",
    "loudness",
    "prepare",
    "profile",
    "speak",
    "text_to_speech",
    "write_wav",
]
