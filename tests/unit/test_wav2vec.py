"""Wav2Vec2 audio front-end from a local folder: parity with transformers, chunk independence, segmenting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.errors import CheckpointError, ConfigError
from avatarv.models.encoders.wav2vec import Wav2Vec2Features, make_audio_features, resample_to_frames


@pytest.fixture(scope="module")
def w2v_dir(tmp_path_factory):
    """A tiny random Wav2Vec2 with the real conv stride (320 samples → 50 Hz), saved like a hub folder."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         feat_extract_norm="group", do_stable_layer_norm=False)
    path = tmp_path_factory.mktemp("w2v") / "wav2vec2"
    Wav2Vec2Model(cfg).eval().save_pretrained(path)
    return path


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))
            ).astype(np.float32)


def test_resample_to_frames_is_linear_at_frame_centres():
    native = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # value = index, 50 Hz
    out = resample_to_frames(native, native_rate=50, fps=25, num_frames=5)
    # frame i's centre (i + ½)/25 s = native position 2i + 1 − ½ … in units where native k sits at (k + ½)/50
    np.testing.assert_allclose(out[:, 0], [0.5, 2.5, 4.5, 6.5, 8.5])


def test_features_equal_transformers_on_one_segment(w2v_dir):
    from transformers import Wav2Vec2Model

    audio = speech(3.0)
    feats = Wav2Vec2Features(w2v_dir, fps=25)
    got = feats.frame_features(audio, 75)
    model = Wav2Vec2Model.from_pretrained(w2v_dir).eval()
    x = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    with torch.no_grad():
        hidden = model(torch.from_numpy(x)[None]).last_hidden_state[0].numpy()
    want = resample_to_frames(hidden, 50, 25, 75)
    assert got.shape == (75, 16)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_latent_tokens_do_not_depend_on_the_chunk(w2v_dir):
    audio = speech(4.0, seed=1)
    feats = Wav2Vec2Features(w2v_dir, fps=25)
    full = feats.frame_features(audio, 100)
    tokens = feats.latent_tokens(audio, 40, 6)  # latent j ← frames 40 + 4j − 3 … 40 + 4j
    assert tokens.shape == (6, 4, 16)
    np.testing.assert_allclose(tokens[1].numpy(), full[41:45])
    np.testing.assert_allclose(tokens[0, :3].numpy(), full[37:40])
    # frames past the end of the audio are silence (zeros)
    tail = feats.latent_tokens(audio, 96, 3).numpy()
    np.testing.assert_allclose(tail[2], 0.0)


def test_long_audio_is_encoded_in_segments_with_context(w2v_dir):
    audio = speech(3.0, seed=2)
    feats = Wav2Vec2Features(w2v_dir, fps=25, segment_s=1.0, context_s=0.4)
    got = feats.track_features(audio)
    assert got.shape == (75, 16)
    # the middle segment (samples 16000 … 32000) is the model run on 16000 − 6400 … 32000 + 6400, centre kept
    x = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    h = feats._hidden(x[16000 - 6400 : 32000 + 6400])
    native = np.concatenate([feats._hidden(x[: 16000 + 6400])[:50], h[20:70], feats._hidden(x[32000 - 6400 :])[20:70]])
    np.testing.assert_allclose(got, resample_to_frames(native, 50, 25, 75), atol=1e-6)


def test_bad_folder_and_wrong_dimension(w2v_dir, tmp_path):
    with pytest.raises(CheckpointError, match="Wav2Vec2"):
        Wav2Vec2Features(tmp_path)
    with pytest.raises(ConfigError, match="audio_dim"):
        make_audio_features(32, 25, w2v_dir)
    assert make_audio_features(16, 25, w2v_dir).dim == 16


def test_pipeline_reads_a_checkpoint_with_a_wav2vec_encoder(w2v_dir, tmp_path):
    from dataclasses import replace

    from avatarv.models.dit import VideoRefDiT
    from avatarv.pipelines.generate import AvatarPipeline

    base = AvatarPipeline.random("tiny")
    cfg = replace(base.cfg, dit=replace(base.cfg.dit, audio_dim=16))
    pipe = AvatarPipeline(cfg, VideoRefDiT(cfg.dit), base.vae, audio_encoder=w2v_dir)
    pipe.save(tmp_path / "ckpt")
    loaded = AvatarPipeline.from_checkpoint(tmp_path / "ckpt")
    assert isinstance(loaded.audio_features, Wav2Vec2Features)
    audio = speech(2.0)
    np.testing.assert_allclose(loaded.audio_features.latent_tokens(audio, 0, 5).numpy(),
                               pipe.audio_features.latent_tokens(audio, 0, 5).numpy())


def test_a_generation_encodes_the_track_once(w2v_dir, tmp_path, real_clips):
    """Every chunk's audio tokens are slices of one encoding of the track (no per-chunk hashing or re-encoding),
    equal to the per-chunk ``latent_tokens``."""
    from dataclasses import replace

    from avatarv.media import read_video
    from avatarv.models.dit import VideoRefDiT
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions

    base = AvatarPipeline.random("tiny")
    cfg = replace(base.cfg, dit=replace(base.cfg.dit, audio_dim=16))
    pipe = AvatarPipeline(cfg, VideoRefDiT(cfg.dit), base.vae, audio_encoder=w2v_dir, random_weights=True)
    feats = pipe.audio_features
    calls = []
    encode = feats.track_features
    feats.track_features = lambda audio: calls.append(len(audio)) or encode(audio)
    audio = speech(1.6)
    ref = read_video(next(p for p in real_clips if p.name == "man_suit_office.mp4"))
    summary = pipe.generate(ref, audio, tmp_path / "w.mp4", GenerationOptions(seconds=1.6, steps=1))
    assert summary["chunks"] >= 2 and len(calls) == 1
    prepared = feats.prepare(audio)
    for start, n in ((0, 3), (8, 4), (36, 2)):
        np.testing.assert_array_equal(prepared.latent_tokens(start, n).numpy(), feats.latent_tokens(audio, start, n).numpy())
