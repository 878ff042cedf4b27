"""The demo's inputs, made by the world: ``ref.mp4`` (6 s reference video with speech, 256 px) and
``speech.wav`` (8 s of *different* sentences by the same voice, 16 kHz mono PCM). Deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from avatarv.world.clip import make_clip
from avatarv.world.identity import FPS, sample_identity
from avatarv.world.speech import SAMPLE_RATE, speech_track

IDENTITY, SCENE = 2, 1  # an expressive talker (mouth gain 1.3, nods, smiles) in a room
REF_SECONDS, SPEECH_SECONDS, REF_SIZE = 6.0, 8.0, 256


def write_examples(out: str | Path = "examples", seed: int = 0) -> list[Path]:
    from avatarv.media import write_mp4

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clip = make_clip(IDENTITY, SCENE, REF_SECONDS, REF_SIZE, seed, clip_index=0)
    ref = write_mp4(out / "ref.mp4", clip.frames, FPS, clip.audio, sample_rate=SAMPLE_RATE, crf=23, preset="slow")
    voice = sample_identity(IDENTITY, seed).voice
    speech, _ = speech_track(voice, SPEECH_SECONDS, seed, "examples.speech", (IDENTITY,),
                             exclude=clip.meta["sentences"])
    wav = out / "speech.wav"
    tmp = out / "speech.tmp.wav"
    sf.write(tmp, np.clip(speech, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    tmp.replace(wav)
    return [ref, wav]
