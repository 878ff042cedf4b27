"""InfiniteTalk's sampling recipe, piece by piece, against formulas written out from ``wan/multitalk.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avatarv.diffusion import wan_sigma_schedule
from avatarv.models.dit.conditions import Conditions
from avatarv.pipelines.infinitetalk_sampling import (
    KnownHead,
    infinitetalk_guidance,
    match_colors,
    pad_reversed_tail,
    pick_bucket,
    resize_and_centercrop,
    speaker_masks,
)


@pytest.mark.parametrize("steps,shift", [(40, 7.0), (8, 11.0), (1, 3.0)])
def test_wan_schedule(steps, shift):
    t = list(np.linspace(1000, 1, steps, dtype=np.float32)) + [0.0]
    want = [shift * (x / 1000) / (1 + (shift - 1) * (x / 1000)) for x in t]  # timestep_transform / 1000
    got = wan_sigma_schedule(steps, shift)
    assert got.shape == (steps + 1,)
    assert np.allclose(got.numpy(), want, atol=1e-6)
    assert got[0] == 1.0 and got[-1] == 0.0 and got[-2] > 0


@pytest.mark.parametrize("text,audio", [(5.0, 4.0), (1.0, 4.0), (2.0, 1.0)])
def test_guidance_is_infinitetalk_cfg(text, audio):
    g = torch.Generator().manual_seed(0)
    cond, drop_text, uncond, drop_audio = (torch.randn(6, generator=g) for _ in range(4))
    scales = infinitetalk_guidance(text, audio)
    preds = {}
    for p in scales.passes():
        key = ("audio" in p, "text" in p)
        preds[p] = {(True, True): cond, (True, False): drop_text, (False, False): uncond,
                    (False, True): drop_audio}[key]
        assert "ref" in p  # the reference is never dropped
    if math.isclose(text, 1.0):
        want = drop_audio + audio * (cond - drop_audio)
        assert len(scales.passes()) == 2
    else:
        want = uncond + text * (cond - drop_text) + audio * (drop_text - uncond)
    assert torch.allclose(scales.combine(preds), want, atol=1e-6)


def test_dropped_text_is_the_negative_prompt_and_dropped_speakers_one_silence():
    audio = torch.randn(1, 2, 9, 5, 3, 8)
    text, neg = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    c = Conditions(audio=audio, text=text, null_text=neg, speaker_masks=torch.ones(1, 3, 4, 4))
    off = c.select(frozenset({"ref"}))
    assert off.audio is None and torch.equal(off.text, neg)
    assert torch.equal(off.dit_kwargs()["speaker_masks"], c.speaker_masks)
    on = c.select(frozenset({"ref", "audio", "text"}))
    assert on.audio is audio and on.text is text
    gated = c.kept({"audio": torch.tensor([False])})  # training's per-sample dropout still zeroes
    assert gated.audio.abs().sum() == 0


def test_window_gather_and_reversed_tail():
    from avatarv.models.encoders.infinitetalk_audio import audio_windows

    emb = torch.arange(5.0)[:, None, None]  # row t holds t: the gathered values are the indices
    idx = audio_windows(emb, range(3, 7), window=5)[..., 0, 0]
    want = [[min(max(f + o, 0), 4) for o in range(-2, 3)] for f in range(3, 7)]
    assert idx.tolist() == want
    emb = torch.arange(10.0)
    assert torch.equal(pad_reversed_tail(emb, 9), emb)
    padded = pad_reversed_tail(emb, 12)  # miss = 12 − 10 + 3 = 5: emb[-5:] reversed appended
    assert padded.tolist() == list(range(10)) + [9, 8, 7, 6, 5]


def test_buckets_and_crop():
    assert pick_bucket(1080, 1920, "infinitetalk-480") == (448, 896)  # ratio 0.5625 → 0.50
    assert pick_bucket(1920, 1080, "infinitetalk-720") == (1280, 704)  # 1.78 → 1.82
    assert pick_bucket(500, 500, "infinitetalk-480") == (640, 640)
    with pytest.raises(ValueError, match="size"):
        pick_bucket(1, 1, "1080p")
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 90:110] = 255  # a vertical bar in the middle survives the centre crop
    out = resize_and_centercrop(frame, (64, 64))
    assert out.shape == (64, 64, 3)
    assert out[:, 30:34].mean() > 200 and out[:, :20].max() == 0


def test_default_speaker_masks_as_infinitetalk():
    h, w, fs = 40, 60, 0.05
    m = speaker_masks(h, w, 2)
    x0, x1 = int(h * fs), int(h * (1 - fs))
    m1 = torch.zeros(h, w)
    m1[x0:x1, int(30 * fs):int(30 * (1 - fs))] = 1
    m2 = torch.zeros(h, w)
    m2[x0:x1, int(30 * fs + 30):int(30 * (1 - fs) + 30)] = 1
    assert torch.equal(m[0], m1) and torch.equal(m[1], m2)
    assert torch.equal(m[2], ((m1 + m2) == 0).float())
    assert torch.equal(speaker_masks(h, w, 1), torch.ones(3, h, w))
    boxed = speaker_masks(h, w, 2, boxes=[(0, 0, 10, 20), (5, 30, 15, 50)])
    assert boxed[0, :10, :20].all() and boxed[0].sum() == 200 and boxed[1, 5:15, 30:50].all()


def test_known_head_replaces_the_model_input_head():
    seen = []

    def velocity(x, sigma):
        seen.append(x[0].clone())
        return (torch.zeros_like(x[0]),)

    known = torch.full((1, 2, 1, 3, 3), 7.0)
    x = torch.randn(1, 2, 4, 3, 3)
    KnownHead(velocity, known)((x,), torch.tensor(0.5))
    assert torch.equal(seen[0][:, :, :1], known) and torch.equal(seen[0][:, :, 1:], x[:, :, 1:])
    assert not torch.equal(x[:, :, :1], known)  # the caller's state is not modified


def test_colour_matching():
    import cv2

    rng = np.random.default_rng(0)
    frames = rng.uniform(0.2, 0.6, (3, 16, 16, 3)).astype(np.float32)
    ref = rng.uniform(0.4, 0.9, (16, 16, 3)).astype(np.float32)
    assert match_colors(frames, ref, 0.0) is frames
    out = match_colors(frames, ref, 1.0)
    ref_lab = cv2.cvtColor(ref, cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)
    for f in out:
        lab = cv2.cvtColor(f.astype(np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)
        assert np.abs(lab - ref_lab).max() < 2.0  # means moved to the reference's (up to gamut clipping)
    half = match_colors(frames, ref, 0.5)
    assert np.allclose(half, 0.5 * frames + 0.5 * out, atol=1e-5)
    with pytest.raises(ValueError):
        match_colors(frames, ref, 1.5)
