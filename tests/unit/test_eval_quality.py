"""Quality: Q-Align's scoring maths on a tiny fake model/tokenizer, and the classical NR index's ranking."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from avatarv.errors import InputError
from avatarv.eval.quality import (
    IMAGE_TOKEN_INDEX,
    LEVEL_WORDS,
    ClassicalNRQuality,
    QAlignScorer,
    blockiness_ratio,
    blur_extent,
    expand_to_square,
    get_quality_scorer,
    level_scores,
    level_token_ids,
    noise_sigma,
    prompt_input_ids,
)

# --- Q-Align -----------------------------------------------------------------------------------------------------------


class _WordTokenizer:
    """Whitespace/punctuation word tokenizer with a growing vocabulary; BOS = 1."""

    bos_token_id = 1

    def __init__(self):
        self.vocab = {"<s>": 1}

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab.setdefault(w, len(self.vocab) + 1) for w in re.findall(r"\w+|[^\w\s]", text)]
        return {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids}


class _Processor:
    image_mean = (0.2, 0.4, 0.6)

    def __init__(self):
        self.seen = []

    def __call__(self, images, return_tensors="pt"):
        self.seen.extend(images)
        return {"pixel_values": torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 255 for im in images])}


class _BrightnessModel(torch.nn.Module):
    """Next-token logits: the level words get ``z = [8b, 4b, 0, 4(1-b), 8(1-b)]`` (b = image brightness);
    every other token gets 50, which the Q-Align score must ignore (softmax over the 5 level words only)."""

    def __init__(self, level_ids, vocab_size=64):
        super().__init__()
        self.level_ids, self.vocab_size = level_ids, vocab_size
        self.calls = []

    def forward(self, input_ids, images):
        self.calls.append(input_ids.clone())
        b = images.mean(dim=(1, 2, 3))  # [B]
        logits = torch.full((input_ids.shape[0], input_ids.shape[1], self.vocab_size), 50.0)
        z = torch.stack([8 * b, 4 * b, 0 * b, 4 * (1 - b), 8 * (1 - b)], 1)  # [B,5]
        logits[:, -1, self.level_ids] = z
        return {"logits": logits}


def _expected(b: float) -> float:
    z = np.array([8 * b, 4 * b, 0, 4 * (1 - b), 8 * (1 - b)])
    p = np.exp(z - z.max())
    p /= p.sum()
    return float(p @ [5, 4, 3, 2, 1])


def test_level_scores_is_a_softmax_over_the_five_words_weighted_5_to_1():
    logits = np.full((3, 10), 100.0)  # large logits elsewhere must not matter
    ids = [2, 5, 7, 8, 9]
    logits[0, ids] = [30, 0, 0, 0, 0]  # certainly "excellent"
    logits[1, ids] = [0, 0, 0, 0, 30]  # certainly "bad"
    logits[2, ids] = [1, 1, 1, 1, 1]  # uniform -> 3
    np.testing.assert_allclose(level_scores(logits, ids), [5.0, 1.0, 3.0], atol=1e-9)
    z = np.array([0.3, 1.2, -0.4, 0.0, 2.0])
    logits[0, ids] = z
    p = np.exp(z) / np.exp(z).sum()
    assert level_scores(logits[:1], ids)[0] == pytest.approx(float(p @ [5, 4, 3, 2, 1]))
    # Q-Align's own [0, 1] scorer weights (1, .75, .5, .25, 0): ours is 4 x that + 1
    assert level_scores(logits[:1], ids)[0] == pytest.approx(4 * float(p @ [1, 0.75, 0.5, 0.25, 0]) + 1)


def test_prompt_and_level_ids():
    tok = _WordTokenizer()
    ids = level_token_ids(tok)
    assert ids == [tok.vocab[w] for w in LEVEL_WORDS]
    prompt = prompt_input_ids(tok)
    assert prompt[0] == tok.bos_token_id and prompt.count(IMAGE_TOKEN_INDEX) == 1
    before = prompt[1 : prompt.index(IMAGE_TOKEN_INDEX)]
    assert before == tok("USER: How would you rate the quality of this image?", add_special_tokens=False)["input_ids"]
    assert prompt[-1] == tok.vocab["is"]  # "... The quality of the image is" -> next token is the level word


def test_qalign_scorer_end_to_end_on_a_fake_model():
    tok, proc = _WordTokenizer(), _Processor()
    scorer = QAlignScorer(None, tok, proc, batch_size=2)
    scorer.model = _BrightnessModel(scorer.level_ids)
    frames = [np.full((20, 30, 3), v, dtype=np.uint8) for v in (255, 0, 128)]
    scores = scorer.score_frames(frames)
    # the processor saw square images padded with its mean colour; brightness is measured on them
    assert all(im.shape == (30, 30, 3) for im in proc.seen)
    np.testing.assert_array_equal(proc.seen[0][0, 0], [51, 102, 153])
    bright = [float(np.asarray(im, dtype=np.float64).mean() / 255) for im in proc.seen]
    np.testing.assert_allclose(scores, [_expected(b) for b in bright], rtol=1e-5)
    assert scores[0] > scores[2] > scores[1]
    assert len(scorer.model.calls) == 2 and scorer.model.calls[0].shape[0] == 2  # batches of 2
    assert (scorer.model.calls[0][0] == IMAGE_TOKEN_INDEX).sum() == 1


def test_expand_to_square():
    im = np.full((2, 4, 3), 9, np.uint8)
    sq = expand_to_square(im, (1, 2, 3))
    assert sq.shape == (4, 4, 3)
    np.testing.assert_array_equal(sq[0, 0], [1, 2, 3])
    np.testing.assert_array_equal(sq[1:3], im)


def test_backend_selection_errors(tmp_path):
    assert get_quality_scorer().name == "classical-nr"
    with pytest.raises(InputError, match="weights"):
        get_quality_scorer("q-align")
    with pytest.raises(InputError, match="not found"):
        get_quality_scorer("q-align", tmp_path / "missing")
    with pytest.raises(InputError, match="unknown"):
        get_quality_scorer("brisque-ish")


# --- the classical index ------------------------------------------------------------------------------------------------


def _natural_image(seed=0, size=256) -> np.ndarray:
    """A photo-like random image: 1/f^1.5 amplitude spectrum, a bright rectangle whose edges sit on the 8-pixel
    grid (real edges must not read as blocking), and a slight lens blur."""
    import cv2

    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    r[0, 0] = 1.0
    chans = []
    for _ in range(3):
        spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / r**1.5
        img = np.real(np.fft.ifft2(spec))
        chans.append((img - img.mean()) / img.std())
    img = 128 + 35 * np.stack(chans, -1)
    img[64:120, 40:200] += 60
    return cv2.GaussianBlur(np.clip(img, 0, 255), (0, 0), 0.7).astype(np.uint8)


def _degrade(img, kind, level):
    import cv2

    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), level)
    if kind == "noise":
        rng = np.random.default_rng(1)
        return np.clip(img + rng.normal(0, level, img.shape), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, level])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    raise ValueError(kind)


LADDERS = [("blur", (1.0, 3.0)), ("noise", (5.0, 15.0)), ("jpeg", (30, 10))]


def _assert_ranking(frame):
    q = ClassicalNRQuality()
    clean = q.factors(frame).score
    for kind, (mild, strong) in LADDERS:
        s_mild = q.factors(_degrade(frame, kind, mild)).score
        s_strong = q.factors(_degrade(frame, kind, strong)).score
        assert clean > s_mild > s_strong, f"{kind}: clean {clean:.3f}, mild {s_mild:.3f}, strong {s_strong:.3f}"


def test_classical_index_orders_degradation_strength_on_synthetic_images():
    """Without real footage: stronger blur / noise / JPEG always scores lower, and the strong ones lower than
    clean. (Clean vs *mild* is checked on real frames: on synthetic textures, mild noise can pass for detail,
    the known weakness of no-reference measures.)"""
    q = ClassicalNRQuality()
    for seed in (0, 1):
        frame = _natural_image(seed)
        clean = q.factors(frame).score
        for kind, (mild, strong) in LADDERS:
            s_mild = q.factors(_degrade(frame, kind, mild)).score
            s_strong = q.factors(_degrade(frame, kind, strong)).score
            assert s_mild > s_strong and clean > s_strong, f"{kind}: {clean:.3f}, {s_mild:.3f}, {s_strong:.3f}"


def test_classical_index_ranks_clean_over_degraded_on_real_frames(real_clips):
    """clean > blur sigma 1 > blur sigma 3, clean > noise 5 > noise 15, clean > JPEG q30 > JPEG q10 on each clip."""
    from avatarv.media import read_video

    for clip in real_clips:
        _assert_ranking(read_video(clip, max_frames=1).frames[0])


def test_classical_measurements():
    img = _natural_image(2)
    y = img.mean(-1)
    assert noise_sigma(y) < 1.0
    assert noise_sigma(y + np.random.default_rng(0).normal(0, 4.0, y.shape)) == pytest.approx(4.0, rel=0.15)
    assert blur_extent(y) < blur_extent(_degrade(img, "blur", 2.0).mean(-1).astype(float))
    blocky = np.kron(np.random.default_rng(3).integers(0, 255, (16, 16)), np.ones((8, 8))).astype(float)
    assert blockiness_ratio(blocky) > 10 * blockiness_ratio(y)
    q = ClassicalNRQuality()
    assert q.factors(np.zeros((64, 64, 3), np.uint8)).exposure < 0.05  # all clipped black
    assert 1.0 <= q.score_frames([img])[0] <= 5.0
