"""The held-out protocol of voice matching: which speakers may shape the method, which ones score it.

Every speaker that informed a tuning or design decision (a constant, a search range, a choice between
two methods) is in ``TUNING_SPEAKERS`` and is never scored. ``HELD_OUT_SPEAKERS`` are scored only:
every real voice available here (the three recordings of ``../shared/real/speech`` and the speech of
the five clips of ``../shared/real/clips``) and espeak-ng voices whose variant, pitch and rate differ
from every tuning voice. ``benchmarks/voice.py`` runs it; ``tests/unit/test_voice_protocol.py`` checks
the two sets stay apart.

Caveat kept on record: before issue #34 the two English radio speakers were part of the six speakers the
engine was developed on (``WORLD_VOICES`` + radio); from issue #34 on they are held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REAL_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "real"


@dataclass(frozen=True)
class Speaker:
    """One speaker of the protocol: an espeak-ng voice or a real recording."""

    name: str
    kind: str  # "espeak" or "real"
    espeak_voice: str = ""  # "accent+variant"
    pitch: int = 50  # espeak 0..99
    words_per_minute: int = 175
    path: str = ""  # real: relative to REAL_ROOT
    group: str = ""  # reported separately: "espeak", "real-en", "real-zh", "real-clip"
    channel: str = "clean"  # a simulated recording channel (``channel.CHANNELS``) laid over an espeak voice

    def sample(self, root: Path = REAL_ROOT) -> np.ndarray:
        """The speaker's voice sample, ``[N]`` float32 16 kHz mono."""
        if self.kind == "real":
            from avatarv.voice.audio import load_audio

            return load_audio(root / self.path)
        from avatarv.voice.channel import CHANNELS

        return CHANNELS[self.channel](self.speak(SAMPLE_TEXT))

    def speak(self, text: str) -> np.ndarray:
        """``text`` in this espeak-ng voice, clean, ``[N]`` float32 16 kHz."""
        from avatarv.world.speech import _espeak

        return np.array(_espeak(text, self.espeak_voice, self.pitch, self.words_per_minute), np.float32)


def _espeak(name: str, voice: str, pitch: int, wpm: int, channel: str = "clean") -> Speaker:
    return Speaker(name, "espeak", voice, pitch, wpm, group="espeak", channel=channel)


def _real(name: str, path: str, group: str) -> Speaker:
    return Speaker(name, "real", path=path, group=group)


# ≈ 10–14 s read by each espeak-ng speaker as its voice sample (never a test or calibration text).
SAMPLE_TEXT = (
    "The old lighthouse keeper climbed the stairs every evening to light the lamp. Ships passing in the "
    "night would see the beam sweep across the dark water, and the sailors knew they were close to home."
)

# Tuning: the only speakers any constant or design choice of avatarv.voice may be fitted on. Each is
# heard through its own simulated recording channel, as each real sample comes with its own.
TUNING_SPEAKERS = (
    _espeak("tune_us_m3_low", "en-us+m3", 25, 145, "dull room: tilt -3, reverb 0.2 s, noise 30 dB"),
    _espeak("tune_en_f2_high", "en+f2", 80, 195),
    _espeak("tune_rp_f4_low", "en-gb-x-rp+f4", 35, 160, "reverb RT60 0.3 s"),
    _espeak("tune_scot_m7_fast", "en-gb-scotland+m7", 55, 215, "phone 300-3400 Hz"),
    _espeak("tune_us_m1_slow", "en-us+m1", 45, 120, "bright lavalier: tilt +3, band 80-7000 Hz"),
    _espeak("tune_gb_f3_mid", "en-gb+f3", 60, 175, "noise 20 dB SNR"),
)

# Scored: every real voice here, and espeak-ng voices of other variants, pitches and rates.
HELD_OUT_SPEAKERS = (
    _real("real_en_female_radio", "speech/en_female_radio.wav", "real-en"),
    _real("real_en_male_radio", "speech/en_male_radio.wav", "real-en"),
    _real("real_zh_female_news", "speech/zh_female_news.wav", "real-zh"),
    _real("clip_man_suit_office", "clips/man_suit_office.mp4", "real-clip"),
    _real("clip_older_man_interview", "clips/older_man_interview.mp4", "real-clip"),
    _real("clip_woman_glasses_red_jacket", "clips/woman_glasses_red_jacket.mp4", "real-clip"),
    _real("clip_woman_selfie_expressive", "clips/woman_selfie_expressive.mp4", "real-clip"),
    _real("clip_young_man_outdoor", "clips/young_man_outdoor.mp4", "real-clip"),
    _espeak("held_029_m2_slow", "en-029+m2", 40, 130),
    _espeak("held_nyc_f1_mid", "en-us-nyc+f1", 65, 180),
    _espeak("held_lanc_m5_deep", "en-gb-x-gbclan+m5", 15, 170),
    _espeak("held_en_f5_high", "en+f5", 90, 150),
    _espeak("held_gb_m4_fast", "en-gb+m4", 50, 240),
    _espeak("held_wmd_annie_slow", "en-gb-x-gbcwmd+Annie", 70, 115),
    _espeak("held_us_grandpa_old", "en-us+grandpa", 30, 150),
)


def speaker_key(speaker: Speaker) -> tuple:
    """What makes two speakers the same voice, whatever they are called."""
    if speaker.kind == "real":
        return ("real", Path(speaker.path).stem)
    return ("espeak", speaker.espeak_voice.split("+")[-1], speaker.espeak_voice, speaker.pitch, speaker.words_per_minute)


def check_protocol(tuning=TUNING_SPEAKERS, held_out=HELD_OUT_SPEAKERS) -> None:
    """Raise ``ValueError`` if a tuning speaker is scored, or an espeak variant is shared by both sets."""
    tuned = {speaker_key(s) for s in tuning}
    leaked = [s.name for s in held_out if speaker_key(s) in tuned]
    tuned_variants = {s.espeak_voice.split("+")[-1] for s in tuning if s.kind == "espeak"}
    shared = [s.name for s in held_out if s.kind == "espeak" and s.espeak_voice.split("+")[-1] in tuned_variants]
    real_tuning = [s.name for s in tuning if s.kind == "real"]
    if leaked or shared or real_tuning:
        raise ValueError(f"held-out protocol broken: scored tuning speakers {leaked}, shared espeak variants "
                         f"{shared}, real voices in tuning {real_tuning}")
