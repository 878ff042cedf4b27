"""Speech for the world: espeak-ng speaking sentences from a built-in bank, 16 kHz mono float32.

``speak`` uses espeak-ng (voice, pitch and rate from the identity) when the binary is present and a
pure-numpy formant synthesiser otherwise (``engine="formant"`` forces it). ``speech_track`` fills an
exact number of seconds with sentences chosen by seed, separated by pauses, so a clip's audio and video
have the same length to the sample.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter, resample_poly

from avatarv.world.identity import Voice
from avatarv.world.seeds import rng

SAMPLE_RATE = 16_000

SENTENCES = (
    "The weather today is mild, with a light breeze from the west.",
    "I started painting again last spring, mostly small landscapes.",
    "Could you send me the report before the meeting on Thursday?",
    "Our team finished the project two weeks ahead of schedule.",
    "The library closes early on Sundays, so plan your visit.",
    "She bought fresh bread, cheese and a basket of ripe tomatoes.",
    "We are going to talk about three simple ideas this morning.",
    "Every evening he walks the dog along the quiet river path.",
    "The museum opened a new exhibition about ancient maps.",
    "Please remember to turn off the lights when you leave.",
    "My grandmother taught me how to bake apple pie.",
    "The train to the city leaves every twenty minutes.",
    "Honestly, I think the second option is much better.",
    "Thank you all for joining us for this short update.",
    "Learning a new language takes patience and practice.",
    "The garden looks wonderful after all the rain this week.",
    "He fixed the old bicycle with a borrowed set of tools.",
    "Let me show you how the new feature works, step by step.",
    "The coffee shop on the corner makes excellent pastries.",
    "We measured the results twice to be absolutely sure.",
    "The children built a tall tower out of wooden blocks.",
    "Welcome back! Today we will cook a simple vegetable soup.",
    "I can hardly believe how quickly this year has gone by.",
    "The mountains were covered in snow when we arrived.",
    "If you have any questions, write them in the comments.",
    "A good night of sleep makes a surprising difference.",
    "The orchestra played a beautiful piece by a young composer.",
    "Our flight was delayed, so we explored the airport shops.",
    "This recipe needs two cups of flour and a pinch of salt.",
    "The city council approved the plan for a new park.",
    "Good morning, and thank you for watching this channel.",
    "My favourite season is autumn, when the leaves turn red.",
    "The scientist explained the experiment in plain words.",
    "We should leave early to avoid the heavy traffic.",
    "The old lighthouse still guides ships along the coast.",
    "Reading before bed helps me relax after a long day.",
    "The market is busy on Saturday mornings, full of colour.",
    "Let us review the main points one more time.",
    "The kitten slept all afternoon in a patch of sunlight.",
    "I would like to thank my colleagues for their help.",
    "There is a small bakery near the station that I love.",
    "The final chapter of the book surprised everyone.",
    "Water the plants twice a week during the summer.",
    "This camera takes sharp pictures even in low light.",
    "We planted three apple trees behind the house.",
    "The lecture covers the history of modern architecture.",
    "Remember that practice matters more than talent.",
    "A warm cup of tea is the best way to start the day.",
    "The students presented their research with confidence.",
    "Tomorrow will be cloudy, with a chance of showers.",
    "He told a funny story about his first day at work.",
    "The bridge was built more than a hundred years ago.",
    "Let me explain why this small change matters so much.",
    "The festival brings music and food to the whole town.",
    "I keep a notebook to write down new ideas.",
    "Our neighbours invited us to dinner on Friday night.",
    "The river was calm and the air smelled of pine.",
    "Try to breathe slowly and keep your shoulders relaxed.",
    "Software updates often fix small but annoying problems.",
    "Before we begin, please check that your sound is on.",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _parse_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng --stdout writes a streaming WAV (sizes unknown): read rate and PCM after 'data'."""
    if data[:4] != b"RIFF" or b"data" not in data[:200]:
        raise RuntimeError("espeak-ng did not produce WAV output")
    rate = int.from_bytes(data[24:28], "little")
    start = data.index(b"data", 12) + 8
    pcm = np.frombuffer(data[start : start + (len(data) - start) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


@lru_cache(maxsize=256)
def _espeak(text: str, voice: str, pitch: int, rate: int) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found")
    out = subprocess.run(
        [exe, "-v", voice, "-p", str(pitch), "-s", str(rate), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    wav, sr = _parse_wav_bytes(out)
    if sr != SAMPLE_RATE:
        g = np.gcd(sr, SAMPLE_RATE)
        wav = resample_poly(wav, SAMPLE_RATE // g, sr // g).astype(np.float32)
    wav.setflags(write=False)
    return wav


# ---- formant fallback -------------------------------------------------------------------------------
_VOWELS = {  # F1, F2, F3 (Hz), adult male averages (Peterson & Barney 1952)
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
    "y": (390, 1990, 2550),
}
_VOICED = set("bdgjlmnrvwz")
_NASAL = set("mn")


def _resonators(x: np.ndarray, formants, bandwidths, sr: int) -> np.ndarray:
    """Cascade of second-order resonators (Klatt 1980) at ``formants`` with ``bandwidths``."""
    for f, bw in zip(formants, bandwidths, strict=True):
        c = -np.exp(-2 * np.pi * bw / sr)
        b = 2 * np.exp(-np.pi * bw / sr) * np.cos(2 * np.pi * f / sr)
        a = 1 - b - c
        x = lfilter([a], [1, -b, -c], x)
    return x


def formant_speech(text: str, voice: Voice, seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A pure-numpy formant synthesiser: letters → vowel/consonant segments with formant resonators, a
    glottal pulse source with declining pitch and per-word accents, noise for fricatives and bursts."""
    r = rng(seed, "speech.formant", len(text))
    speed = 165.0 / voice.rate
    shift = 1.17 if voice.female else 1.0  # shorter vocal tract
    segments: list[np.ndarray] = []
    t_total = 0.0
    words = text.lower().split()
    n_words = max(len(words), 1)
    for wi, word in enumerate(words):
        accent = 1.0 + (0.12 if r.random() < 0.4 else 0.0)
        prev_vowel = "a"
        for ch in word:
            if ch in _VOWELS:
                dur = r.uniform(0.08, 0.14) * speed
                form, amp, voiced, noise = _VOWELS[ch], 1.0, True, 0.0
                prev_vowel = ch
            elif ch in _VOICED:
                dur = r.uniform(0.045, 0.07) * speed
                f1 = 250 if ch in _NASAL else _VOWELS[prev_vowel][0] * 0.6
                form, amp, voiced, noise = (f1, *_VOWELS[prev_vowel][1:]), 0.35, True, 0.08
            elif ch.isalpha():
                dur = r.uniform(0.05, 0.09) * speed
                form, amp, voiced, noise = (2500, 4500, 6000) if ch in "sczx" else (1500, 3000, 4500), 0.0, False, 0.25
            else:
                continue
            n = int(dur * sr)
            t = t_total + np.arange(n) / sr
            decl = 1.0 - 0.18 * (wi / n_words)
            f0 = voice.f0 * decl * accent * (1 + 0.02 * np.sin(2 * np.pi * 5.0 * t))
            src = np.zeros(n)
            if voiced:
                phase = np.cumsum(f0 / sr)
                src = (2 * (phase % 1.0) - 1.0) * amp  # sawtooth glottal source, ~ -6 dB/oct after filtering
            if noise:
                src = src + r.standard_normal(n) * noise
            seg = _resonators(src, [f * shift for f in form], (90, 110, 170), sr)
            ramp = min(n // 4, int(0.01 * sr))
            if ramp > 0:
                w = np.ones(n)
                w[:ramp] = np.linspace(0, 1, ramp)
                w[-ramp:] = np.linspace(1, 0, ramp)
                seg = seg * w
            segments.append(seg)
            t_total += dur
        gap = int(r.uniform(0.04, 0.1) * sr * speed)
        if word and word[-1] in ",.;:!?":
            gap += int(0.2 * sr)
        segments.append(np.zeros(gap))
        t_total += gap / sr
    out = np.concatenate(segments) if segments else np.zeros(0)
    peak = np.max(np.abs(out)) if out.size else 0.0
    if peak > 0:
        out = out * (0.7 / peak)
    return out.astype(np.float32)


def speak(text: str, voice: Voice, seed: int = 0, engine: str = "auto") -> np.ndarray:
    """One utterance, 16 kHz mono float32. engine: "auto" (espeak-ng if installed), "espeak", "formant"."""
    if engine == "espeak" or (engine == "auto" and espeak_available()):
        return np.array(_espeak(text, voice.espeak_voice, voice.pitch, voice.rate))
    if engine in ("auto", "formant"):
        return formant_speech(text, voice, seed)
    raise ValueError(f"unknown speech engine {engine!r}")


def speech_track(
    voice: Voice, seconds: float, seed: int, stream: str = "clip", ids=(), engine: str = "auto", exclude=()
) -> tuple[np.ndarray, list[str]]:
    """Exactly ``round(seconds·16000)`` samples of speech: sentences from the bank (chosen by seed, never
    one of ``exclude``), a short lead-in, pauses between sentences; the end is cut with a 20 ms fade."""
    n = int(round(seconds * SAMPLE_RATE))
    r = rng(seed, "speech." + stream, *ids)
    parts = [np.zeros(int(r.uniform(0.1, 0.4) * SAMPLE_RATE), np.float32)]
    used: list[str] = []
    order = [k for k in r.permutation(len(SENTENCES)) if SENTENCES[k] not in set(exclude)]
    k = 0
    while sum(len(p) for p in parts) < n:
        text = SENTENCES[order[k % len(order)]]
        k += 1
        wav = speak(text, voice, seed=int(r.integers(2**31)), engine=engine)
        wav = wav * np.float32(r.uniform(0.6, 0.9) / max(float(np.max(np.abs(wav))), 1e-6))
        parts.append(wav.astype(np.float32))
        parts.append(np.zeros(int(r.uniform(0.2, 0.6) * SAMPLE_RATE), np.float32))
        used.append(text)
    track = np.concatenate(parts)[:n].copy()
    fade = min(int(0.02 * SAMPLE_RATE), n)
    if fade:
        track[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return track.astype(np.float32), used
