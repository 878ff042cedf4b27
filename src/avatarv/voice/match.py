"""Voice matching: make synthetic speech take a sample's pitch, range, rate, loudness and timbre.

Pipeline (WORLD domain, one utterance):
1. rate   — the synthesiser's length control, then a residual WORLD time stretch (``duration_factor``);
2. pitch  — log-linear F0 map: ln f' = (ln f − ln med_src)·σ_tgt/σ_src + ln med_tgt (median and range);
3. timbre — (a) frequency warp of the envelope by α (vocal-tract length), (b) an equaliser: the smoothed
   difference of mean log envelopes, target − warped source, scaled by ``envelope_gain``, (c) the same
   for aperiodicity (breathy vs buzzy source), scaled by ``aperiodicity_gain``;
4. loudness — BS.1770 gain to the sample's integrated loudness.

α starts from the warp that best aligns the two long-term envelopes; α and the two gains are then tuned
once per voice (in ``profile``) by analysis-by-synthesis: render a fixed calibration paragraph for a few
candidate settings and keep the one whose speaker embedding is closest to the sample's. Pitch and rate
are never tuned: they are measured targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from avatarv.voice.measure import PitchStats, mean_envelopes, pitch_stats
from avatarv.voice.world import Analysis, analyse, bin_frequencies, smooth_bins, synthesise, warp_frequency

# Read aloud by the plain voice to measure its own envelope and to tune a conversion; never the test text.
CALIBRATION_TEXT = (
    "A calm voice can tell a long story about rivers, mountains and busy cities. "
    "Yesterday we walked along the harbour and watched the fishing boats come in while the sun went down."
)
WARP_RANGE = (0.75, 1.45)
_LOG_AP_FLOOR = np.log(1e-4)


@dataclass
class Conversion:
    """Timbre settings of one (voice, synthesiser) pair."""

    warp: float = 1.0
    envelope_gain: float = 1.0
    aperiodicity_gain: float = 1.0
    similarity: float | None = None  # embedding cosine on the calibration text when tuned

    def to_dict(self) -> dict:
        return {k: (None if v is None else round(float(v), 4)) for k, v in asdict(self).items()}


@dataclass
class SourceVoice:
    """The plain synthetic voice, measured once on the calibration text."""

    analysis: Analysis
    envelope: np.ndarray  # [513] mean log envelope, voiced frames
    aperiodicity: np.ndarray  # [513]


@lru_cache(maxsize=4)
def source_voice(synthesiser) -> SourceVoice:
    wave = synthesiser.synthesise(CALIBRATION_TEXT)
    analysis = analyse(wave, accurate=True)
    envelope, aperiodicity = mean_envelopes(analysis)
    return SourceVoice(analysis, envelope, aperiodicity)


def best_warp(source_env: np.ndarray, target_env: np.ndarray) -> float:
    """α minimising the mean-removed squared distance of log envelopes over 200–5000 Hz."""
    freqs = bin_frequencies(source_env.shape[-1])
    band = (freqs > 200) & (freqs < 5000)
    best = (np.inf, 1.0)
    for alpha in np.exp(np.linspace(np.log(WARP_RANGE[0]), np.log(WARP_RANGE[1]), 49)):
        diff = (warp_frequency(source_env, alpha) - target_env)[band]
        cost = float(np.mean((diff - diff.mean()) ** 2))
        best = min(best, (cost, float(alpha)))
    return best[1]


def map_pitch(f0: np.ndarray, source: PitchStats, target_median: float, target_log_std: float) -> np.ndarray:
    """Log-linear F0 mapping onto the target median and range; unvoiced frames stay 0."""
    voiced = f0 > 0
    if not voiced.any() or not np.isfinite(source.median_hz):
        return f0
    range_ratio = float(np.clip(target_log_std / max(source.log_std, 1e-3), 0.5, 2.0))
    log_f0 = np.log(np.where(voiced, f0, 1.0))
    mapped = np.exp((log_f0 - np.log(source.median_hz)) * range_ratio + np.log(target_median))
    return np.where(voiced, mapped, 0.0)


def convert(
    analysis: Analysis,
    source: SourceVoice,
    target_envelope: np.ndarray,
    target_aperiodicity: np.ndarray,
    target_pitch: tuple[float, float],
    conversion: Conversion,
    duration_factor: float = 1.0,
) -> np.ndarray:
    """WORLD parameters of plain speech → matched waveform ``[N']`` float32 16 kHz (peak 0.7)."""
    alpha = conversion.warp
    f0 = map_pitch(analysis.f0, pitch_stats(f0=analysis.f0), *target_pitch)
    eq = smooth_bins(target_envelope - warp_frequency(source.envelope, alpha))  # [513]
    ap_eq = smooth_bins(target_aperiodicity - warp_frequency(source.aperiodicity, alpha))
    log_sp = warp_frequency(analysis.log_sp, alpha) + conversion.envelope_gain * eq
    log_ap = warp_frequency(analysis.log_ap, alpha) + conversion.aperiodicity_gain * ap_eq
    matched = Analysis(f0=f0, log_sp=log_sp, log_ap=np.clip(log_ap, _LOG_AP_FLOOR, 0.0))
    wave = synthesise(matched, duration_factor)
    return (wave * (0.7 / (np.abs(wave).max() + 1e-9))).astype(np.float32)


def fit_conversion(
    source: SourceVoice,
    target_envelope: np.ndarray,
    target_aperiodicity: np.ndarray,
    target_pitch: tuple[float, float],
    target_embedding: np.ndarray | None,
) -> Conversion:
    """Acoustic start (warp from envelopes, unit gains), then coordinate search on embedding similarity."""
    start = Conversion(warp=best_warp(source.envelope, target_envelope))
    if target_embedding is None:
        return start
    from avatarv.voice.embedding import cosine, speaker_embedding

    def score(c: Conversion) -> float:
        wave = convert(source.analysis, source, target_envelope, target_aperiodicity, target_pitch, c)
        return cosine(speaker_embedding(wave), target_embedding)

    best = Conversion(start.warp, 1.0, 1.0, score(start))

    def consider(**change) -> None:
        nonlocal best
        cand = Conversion(**{**asdict(best), **change, "similarity": None})
        cand.similarity = score(cand)
        if cand.similarity > best.similarity:
            best = cand

    for step in (-0.16, -0.11, -0.05, 0.05, 0.11, 0.16):
        consider(warp=float(np.clip(start.warp * np.exp(step), *WARP_RANGE)))
    for gain in (0.0, 0.5, 1.5, 2.0):
        consider(envelope_gain=gain)
    for gain in (0.0, 2.0, 3.0):
        consider(aperiodicity_gain=gain)
    centre = best.warp
    for step in (-0.05, -0.025, 0.025, 0.05):
        consider(warp=float(np.clip(centre * np.exp(step), *WARP_RANGE)))
    return best
