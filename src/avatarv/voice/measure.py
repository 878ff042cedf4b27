"""What a voice sample is made of: pitch, speaking rate, loudness and spectral envelope.

- Pitch: WORLD Harvest F0 over voiced frames: median, 5th/95th percentiles, std of log F0 (range).
- Speaking rate: syllables per second of *speech* (pauses excluded, i.e. articulation rate). Speech time
  comes from Silero VAD; syllables from what Whisper heard (vowel nuclei of its espeak-ng phonemisation).
  When Whisper is not confident (non-English, noise) we count syllable nuclei acoustically instead
  (energy peaks with ≥ 2 dB dips on voiced frames, after de Jong & Wempe 2009).
- Pauses: the median silence between Silero VAD speech spans (≥ 150 ms).
- Envelope: mean log WORLD spectral envelope and aperiodicity over voiced frames.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import find_peaks

from avatarv.voice.world import FRAME_PERIOD_MS, Analysis, track_f0

SAMPLE_RATE = 16000
ASR_MIN_LOGPROB = -1.0  # below this mean token log-prob the transcript is not trusted for counting
_VOWELS = "aeiouyɑɐɒæɛɜəɪɔʊʌʏøœɚɝɨʉɯɤɘɵɞɶ"


@dataclass
class PitchStats:
    median_hz: float
    p5_hz: float
    p95_hz: float
    log_std: float  # std of ln F0: the pitch range in a scale-free unit
    voiced_s: float


def pitch_stats(wave: np.ndarray | None = None, f0: np.ndarray | None = None) -> PitchStats:
    """F0 statistics of ``wave`` (or of a given F0 track ``[T]``) over voiced frames."""
    if f0 is None:
        f0 = track_f0(wave, accurate=True)
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        return PitchStats(float("nan"), float("nan"), float("nan"), float("nan"), 0.0)
    return PitchStats(
        median_hz=float(np.median(voiced)),
        p5_hz=float(np.percentile(voiced, 5)),
        p95_hz=float(np.percentile(voiced, 95)),
        log_std=float(np.std(np.log(voiced))),
        voiced_s=voiced.size * FRAME_PERIOD_MS / 1000.0,
    )


@lru_cache(maxsize=1)
def _vad_model():
    import silero_vad

    return silero_vad.load_silero_vad(onnx=True)


def speech_spans(wave: np.ndarray) -> list[tuple[float, float]]:
    """Speech intervals in seconds (Silero VAD; pauses ≥ 150 ms split spans)."""
    import silero_vad
    import torch

    stamps = silero_vad.get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
        _vad_model(),
        sampling_rate=SAMPLE_RATE,
        min_silence_duration_ms=150,
        speech_pad_ms=0,
    )
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def speech_seconds(wave: np.ndarray) -> float:
    return float(sum(end - start for start, end in speech_spans(wave)))


def median_pause(spans: list[tuple[float, float]]) -> float:
    """Median silence between speech spans in seconds (``nan`` with fewer than two spans)."""
    gaps = [b - a for (_, a), (b, _) in zip(spans[:-1], spans[1:], strict=True)]
    return float(np.median(gaps)) if gaps else float("nan")


def count_syllables(text: str) -> int:
    """Vowel nuclei in espeak-ng's IPA for ``text`` (a diphthong counts once); letter groups without espeak."""
    if shutil.which("espeak-ng"):
        ipa = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", "en-us", "--", text], capture_output=True, text=True, check=True
        ).stdout
        return sum(len(re.findall(f"[{_VOWELS}]+", word)) + word.count("\u0329") for word in ipa.split())
    words = re.findall(r"[a-z]+", text.lower())
    return sum(max(1, len(re.findall(r"[aeiouy]+", w)) - (w.endswith("e") and len(w) > 2)) for w in words)


def acoustic_syllables(wave: np.ndarray, f0: np.ndarray | None = None) -> int:
    """Syllable nuclei from the energy envelope: peaks ≥ 2 dB above their dips, voiced, within 25 dB of max."""
    hop = int(SAMPLE_RATE * FRAME_PERIOD_MS / 1000)
    n = len(wave) // hop
    frames = wave[: n * hop].reshape(n, hop).astype(np.float64)
    energy_db = 10 * np.log10(np.convolve((frames**2).mean(1), np.hanning(9) / np.hanning(9).sum(), "same") + 1e-12)
    if f0 is None:
        f0 = track_f0(wave, accurate=False)
    f0 = f0[:n] if len(f0) >= n else np.pad(f0, (0, n - len(f0)))
    peaks, _ = find_peaks(energy_db, prominence=2.0, distance=int(0.08 * 1000 / FRAME_PERIOD_MS))
    keep = (energy_db[peaks] > energy_db.max() - 25) & (f0[peaks] > 0)
    return int(keep.sum())


@dataclass
class RateEstimate:
    syllables_per_s: float
    method: str  # "asr" (Whisper transcript), "text" (given), "acoustic" (energy nuclei)
    syllables: int
    speech_s: float
    transcript: str
    pause_median_s: float = float("nan")  # median pause between speech spans (the pause pattern)


def speaking_rate(wave: np.ndarray, text: str | None = None) -> RateEstimate:
    """Articulation rate of ``wave``; pass ``text`` when it is known (synthesised speech) to skip ASR."""
    spans = speech_spans(wave)
    speech_s = float(sum(end - start for start, end in spans))
    pause = median_pause(spans)
    if speech_s <= 0.2:
        return RateEstimate(float("nan"), "none", 0, speech_s, "", pause)
    method = "text"
    if text is None:
        from avatarv.voice.asr import transcribe

        heard = transcribe(wave)
        if heard.text and heard.avg_logprob > ASR_MIN_LOGPROB and count_syllables(heard.text) > 0:
            text, method = heard.text, "asr"
    if text:
        syllables = count_syllables(text)
        return RateEstimate(syllables / speech_s, method, syllables, speech_s, text, pause)
    syllables = acoustic_syllables(wave)
    return RateEstimate(syllables / speech_s, "acoustic", syllables, speech_s, "", pause)


def mean_envelopes(analysis: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """Mean log spectral envelope and mean log aperiodicity over voiced frames, each ``[513]``."""
    voiced = analysis.voiced
    if voiced.sum() < 10:
        voiced = np.ones_like(voiced)
    return analysis.log_sp[voiced].mean(0), analysis.log_ap[voiced].mean(0)
