"""Sync-C / Sync-D maths: the score function, the distance table, the MFCC front-end and the windowing, each
checked against an independent computation (the original's torch code path, or the formula)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatarv.eval.sync import (
    VSHIFT,
    distance_table,
    embed_track,
    evaluate_track,
    framewise_confidence,
    mfcc_features,
    mfcc_windows,
    sync_scores,
    window_count,
)

# --- sync_scores ----------------------------------------------------------------------------------------------------


def _reference_scores(dists: np.ndarray) -> tuple[int, float, float]:
    """What SyncNetInstance.evaluate does with its list of per-frame distance vectors (torch ops)."""
    per_frame = [torch.from_numpy(dists[:, i]) for i in range(dists.shape[1])]
    mdist = torch.mean(torch.stack(per_frame, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    vshift = (dists.shape[0] - 1) // 2
    return int(vshift - minidx), float(torch.median(mdist) - minval), float(minval)


def test_sync_scores_hand_computed_table():
    # mean over frames per offset: 10 everywhere, except 4 at index 10 and 7 at index 20
    dists = np.full((31, 3), 10.0)
    dists[10] = [3.0, 4.0, 5.0]
    dists[20] = [6.0, 8.0, 7.0]
    offset, sync_c, sync_d = sync_scores(dists)
    assert offset == 15 - 10 == 5
    assert sync_d == pytest.approx(4.0)
    assert sync_c == pytest.approx(10.0 - 4.0)  # the median of 29 tens, a 4 and a 7 is 10


def test_sync_scores_median_is_the_16th_smallest():
    mdist = np.arange(31, dtype=np.float64)[::-1] * 0.5 + 1.0  # 16, 15.5, ..., 1  -> min at index 30
    offset, sync_c, sync_d = sync_scores(np.stack([mdist, mdist], 1))
    assert offset == 15 - 30 == -15
    assert sync_d == pytest.approx(1.0)
    assert sync_c == pytest.approx(np.sort(mdist)[15] - 1.0)


def test_sync_scores_ties_take_the_first_minimum():
    dists = np.full((31, 2), 9.0)
    dists[12] = 2.0
    dists[18] = 2.0  # same mean: argmin is the first (index 12) as torch.min and np.argmin
    offset, _, sync_d = sync_scores(dists)
    assert offset == 3
    assert sync_d == pytest.approx(2.0)


def test_sync_scores_match_the_original_torch_code_on_random_tables():
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(1, 40))
        # integer tables make exact ties in the means common
        dists = rng.integers(0, 4, size=(31, n)).astype(np.float64) if trial % 2 else rng.random((31, n)) * 20
        offset, sync_c, sync_d = sync_scores(dists)
        ref = _reference_scores(dists)
        assert offset == ref[0]
        assert sync_c == pytest.approx(ref[1], abs=1e-9)
        assert sync_d == pytest.approx(ref[2], abs=1e-9)


def test_sync_scores_rejects_bad_shapes():
    with pytest.raises(ValueError):
        sync_scores(np.zeros((30, 5)))  # even number of offsets
    with pytest.raises(ValueError):
        sync_scores(np.zeros((31, 0)))


def test_framewise_confidence_definition():
    rng = np.random.default_rng(1)
    d = rng.random((31, 20))
    d[7] -= 0.5
    conf = framewise_confidence(d)
    mdist = d.mean(1)
    raw = np.median(mdist) - d[7]
    from scipy.signal import medfilt

    np.testing.assert_allclose(conf, medfilt(raw, 9))


# --- distance table -------------------------------------------------------------------------------------------------


def _reference_calc_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int) -> np.ndarray:
    """The original calc_pdist, written out again: zero-padded audio, pairwise_distance per video frame."""
    win = vshift * 2 + 1
    feat2p = F.pad(feat2, (0, 0, vshift, vshift))
    rows = [F.pairwise_distance(feat1[[i], :].repeat(win, 1), feat2p[i : i + win, :]) for i in range(len(feat1))]
    return torch.stack(rows, 1).numpy()


def test_distance_table_matches_calc_pdist():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(23, 16))
    a = rng.normal(size=(23, 16))
    ours = distance_table(v, a)
    ref = _reference_calc_pdist(torch.from_numpy(v), torch.from_numpy(a), VSHIFT)
    assert ours.shape == (31, 23)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shift", [-12, -5, 0, 3, 9])
def test_known_shift_is_recovered_with_the_documented_sign(shift):
    """Audio that *leads* the video by k frames carries at window j what the video shows at j + k; SyncNet's
    offset must then be +k (audio leads: offset > 0)."""
    rng = np.random.default_rng(3)
    n, dim = 60, 32
    content = rng.normal(size=(n + 40, dim))  # content[t + 20] is what happens at time t
    video_emb = content[20 : 20 + n]
    audio_emb = content[20 + shift : 20 + shift + n]  # audio window j shows the content at time j + shift
    audio_emb = audio_emb + 0.05 * rng.normal(size=audio_emb.shape)
    offset, sync_c, sync_d = sync_scores(distance_table(video_emb, audio_emb))
    assert offset == shift
    assert sync_c > 1.0
    assert sync_d < 2.0


# --- MFCC front-end -------------------------------------------------------------------------------------------------


def _mfcc_formula(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """MFCCs from the textbook formula with SyncNet's parameters, written independently: pre-emphasis 0.97,
    25 ms rectangular frames every 10 ms (zero-padded end), |FFT_512|^2 / 512, 26 triangular HTK-mel filters
    0..8 kHz whose corners sit on FFT bins ``floor(513 f / sr)`` (the convention of python_speech_features and
    of SyncNet's training), log, orthonormal DCT-II, lifter 22, c0 := log frame energy."""
    from scipy.fft import dct

    x = np.asarray(x, dtype=np.float64)
    y = np.append(x[0], x[1:] - 0.97 * x[:-1])
    flen, fstep, nfft = 400, 160, 512
    n = 1 + int(np.ceil((len(y) - flen) / fstep))
    y = np.concatenate([y, np.zeros((n - 1) * fstep + flen - len(y))])
    frames = np.stack([y[i * fstep : i * fstep + flen] for i in range(n)])
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft  # [n, 257]
    mel = lambda f: 2595 * np.log10(1 + f / 700.0)  # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595.0) - 1)  # noqa: E731
    edges = imel(np.linspace(mel(0), mel(sr / 2), 28))
    corners = np.floor((nfft + 1) * edges / sr)
    bins = np.arange(nfft // 2 + 1)
    fb = np.zeros((26, bins.size))
    for j in range(26):
        lo, mid, hi = corners[j : j + 3]
        rising = (bins >= lo) & (bins < mid)
        falling = (bins >= mid) & (bins < hi)
        fb[j, rising] = (bins[rising] - lo) / (mid - lo)
        fb[j, falling] = (hi - bins[falling]) / (hi - mid)
    feat = np.log(np.maximum(power @ fb.T, 1e-300))
    cep = dct(feat, type=2, axis=1, norm="ortho")[:, :13]
    cep *= 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    cep[:, 0] = np.log(power.sum(1))
    return cep.T


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)  # syllable-rate amplitude modulation
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700, 1200, 2400), 1))
    return (0.2 * envelope * voiced + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def test_mfcc_front_end_matches_the_formula():
    audio = _speechlike(1.0)
    ours = mfcc_features(audio)
    assert ours.shape == (13, 99)  # 100 Hz: 1 + ceil((16000 - 400) / 160)
    ref = _mfcc_formula(np.clip(np.round(audio * 32768.0), -32768, 32767))
    assert ref.shape == ours.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-7)


def test_mfcc_front_end_sees_int16_sample_values():
    audio = _speechlike(0.5, seed=1)
    as_int16 = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(mfcc_features(audio), mfcc_features(as_int16))
    with pytest.raises(ValueError):
        mfcc_features(audio, sample_rate=44100)


def test_mfcc_frames_are_local_at_100_hz():
    """MFCC frame m covers samples 160 m .. 160 m + 399: a click at sample s changes frames (s - 399) / 160 .. s / 160."""
    audio = np.zeros(16000, dtype=np.float32)
    base = mfcc_features(audio + 1e-3 * np.sin(np.arange(16000)).astype(np.float32))
    clicked = audio + 1e-3 * np.sin(np.arange(16000)).astype(np.float32)
    clicked[8000] += 0.5
    changed = np.nonzero(np.abs(mfcc_features(clicked) - base).max(0) > 1e-6)[0]
    assert changed.min() == int(np.ceil((8000 - 399) / 160)) and changed.max() == 8000 // 160


# --- windowing ------------------------------------------------------------------------------------------------------


def test_window_count_follows_the_original():
    # min_length = min(T, floor(N / 640)); windows = min_length - 5
    assert window_count(100, 100 * 640) == 95
    assert window_count(100, 80 * 640 + 639) == 75
    assert window_count(5, 10 * 640) == 0
    assert window_count(3, 0) == 0


def test_mfcc_windows_take_4i_to_4i_plus_20():
    mfcc = np.arange(13 * 60, dtype=np.float64).reshape(13, 60)
    w = mfcc_windows(mfcc, 6)
    assert w.shape == (6, 1, 13, 20)
    for i in range(6):
        np.testing.assert_array_equal(w[i, 0], mfcc[:, 4 * i : 4 * i + 20])
    with pytest.raises(ValueError):
        mfcc_windows(mfcc, 12)  # needs 4*11+20 = 64 frames


# --- the pipeline with an oracle embedder ---------------------------------------------------------------------------


class _LoudnessOracle(torch.nn.Module):
    """A stand-in for a trained SyncNet: the lip embedding is the (centred) brightness of the 5 frames, the audio
    embedding the (centred) log energy of the 5 video frames' MFCC groups. In sync they agree."""

    def embed_lip_sequence(self, frames, chunk=16):  # [1,3,T,224,224] -> [T-4, 5]
        b = frames.mean(dim=(1, 3, 4))[0] / 255.0  # [T]
        w = b.unfold(0, 5, 1)  # [T-4, 5]
        return (w - w.mean(1, keepdim=True)) * 10

    def embed_audio(self, mfcc):  # [n,1,13,20] -> [n,5]
        e = mfcc[:, 0, 0, :].reshape(-1, 5, 4).mean(-1)  # c0 = log energy, one value per video frame
        return (e - e.mean(1, keepdim=True)) / 2


def _synthetic_talker(n_frames: int, delay_frames: int, seed: int = 0):
    """Frames whose brightness follows the loudness of a random syllable train; the audio is delayed by
    ``delay_frames`` (positive: the audio lags the video)."""
    rng = np.random.default_rng(seed)
    loud = rng.random(n_frames + 40) > 0.5  # per-frame on/off syllables
    t = np.arange((n_frames + 40) * 640) / 16000
    carrier = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    audio_full = (0.3 * np.repeat(loud, 640) + 0.01) * carrier
    start = 20 * 640 - delay_frames * 640
    audio = audio_full[start : start + n_frames * 640].astype(np.float32)
    frames = np.repeat((40 + 160 * loud[20 : 20 + n_frames]).astype(np.uint8), 224 * 224 * 3).reshape(n_frames, 224, 224, 3)
    return frames, audio


@pytest.mark.parametrize("delay", [-6, 0, 4])
def test_pipeline_recovers_a_delay_with_the_documented_sign(delay):
    frames, audio = _synthetic_talker(60, delay)
    result = evaluate_track(_LoudnessOracle(), frames, audio)
    assert result.n_windows == 55
    assert result.dists.shape == (31, 55)
    assert result.offset == -delay  # audio delayed (lags) -> offset < 0; audio early (leads) -> offset > 0
    assert result.sync_c > 0.5


def test_embed_track_shapes():
    frames, audio = _synthetic_talker(30, 0)
    v, a = embed_track(_LoudnessOracle(), frames, audio)
    assert v.shape == a.shape == (25, 5)
    v, a = embed_track(_LoudnessOracle(), frames[:5], audio)
    assert v.shape[0] == 0
