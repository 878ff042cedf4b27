"""The committed demo inputs are what ``make examples`` writes (deterministic)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from avatarv.resources import example
from avatarv.world.examples import write_examples

EXAMPLES = example("ref.mp4").parent


def test_examples_reproduce(tmp_path):
    ref, wav = write_examples(tmp_path)
    assert wav.read_bytes() == (EXAMPLES / "speech.wav").read_bytes()
    speech, sr = sf.read(wav, dtype="float32")
    assert sr == 16000 and speech.ndim == 1 and len(speech) == 8 * 16000
    from avatarv.media import read_video

    mine, committed = read_video(ref), read_video(EXAMPLES / "ref.mp4")
    assert mine.frames.shape == committed.frames.shape == (150, 256, 256, 3)
    assert np.abs(mine.frames.astype(np.int16) - committed.frames).mean() < 1.0
    assert (EXAMPLES / "ref.mp4").stat().st_size + (EXAMPLES / "speech.wav").stat().st_size < 1_000_000
