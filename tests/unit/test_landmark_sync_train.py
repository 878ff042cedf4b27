"""The landmark SyncNet trainer: resumes exactly after an interruption; the pad calibration's formula."""

from __future__ import annotations

import numpy as np
import torch


def test_landmark_sync_trainer_resumes_exactly(tmp_path):
    """Interrupted at step 2 and resumed to 4 gives the same weights (and pad_norm) as 4 steps straight."""
    from avatarv.eval.landmark_sync import load_landmark_sync
    from avatarv.eval.train_landmark_sync import LandmarkSyncTrainConfig, train

    def args(out, stop=None):
        return LandmarkSyncTrainConfig(out=str(out), weights=str(out / "w.safetensors"), clips=2, identities=2,
                                       scenes=2, test_clips=1, seconds=2.4, steps=4, batch_clips=2, run=4, hidden=8,
                                       embed_dim=4, threads=1, seed=0, checkpoint_every=1e9, stop_after=stop)

    quiet = lambda s: None  # noqa: E731
    meta = train(args(tmp_path / "a"), quiet)
    assert meta["held_out_world"]["clips"] == 1 and (tmp_path / "a" / "w.json").is_file()
    (tmp_path / "b").mkdir()
    for name in ("data.npz", "test.npz"):  # same data, no second render
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    assert train(args(tmp_path / "b", stop=2), quiet) == {"stopped_at": 2}
    logs: list[str] = []
    train(args(tmp_path / "b"), logs.append)
    assert "resumed at step 2" in logs
    a = load_landmark_sync(tmp_path / "a" / "w.safetensors").state_dict()
    b = load_landmark_sync(tmp_path / "b" / "w.safetensors").state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert float(a["pad_norm"]) > 0


def test_pad_norm_makes_padding_cost_a_wrong_offset():
    """With c = calibrate_pad_norm, |(v, c) - 0|^2 = |v|^2 + c^2 equals, on average, the squared mean distance to
    the wrong offsets (the formula, checked on an embedder with known outputs)."""
    from avatarv.eval.landmark_sync import LandmarkSyncNet
    from avatarv.eval.sync import distance_table
    from avatarv.eval.train_landmark_sync import LipClip, calibrate_pad_norm

    torch.manual_seed(0)
    r = np.random.default_rng(0)
    model = LandmarkSyncNet(hidden=8, embed_dim=4).eval()
    t = 90
    lips = np.stack([np.linspace(0, 1, 20)[None].repeat(t, 0) * 30 + 100,
                     150 + r.normal(0, 2, (t, 20))], -1)
    eyes = np.tile(np.array([[90.0, 100.0], [150.0, 100.0]]), (t, 1, 1))
    audio = r.normal(0, 0.1, t * 640).astype(np.float32)
    clip = LipClip(lips, eyes, audio, np.zeros((1, 13, 1)), 1, 0)
    c = calibrate_pad_norm(model, [clip])
    assert c > 0 and abs(float(model.pad_norm) - c) < 1e-6  # stored as float32
    from avatarv.eval.landmark_sync import LipTrack, audio_features, embed, n_windows

    model.pad_norm.zero_()
    n = n_windows(t, len(audio), 5)
    v, a = embed(model, LipTrack(lips, eyes).features(), audio_features(audio), n)
    d = distance_table(v, a)
    m = [np.mean(np.r_[d[: 15 - 1 - 3 + 1, i], d[15 - 1 + 3 :, i]]) for i in range(15, n - 15)]
    expected = np.mean([mi**2 - v[i] @ v[i] for mi, i in zip(m, range(15, n - 15), strict=True)])
    np.testing.assert_allclose(c**2, expected, rtol=1e-6)
