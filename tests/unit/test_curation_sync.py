"""The lipsync stage: the SyncNet desync scorer on an oracle embedder (the trained scorer runs on world footage in
``tests/integration/test_curation_filters.py``), the scorer chosen by footage, and the landmark scorer's windows
(real clips: ``tests/integration/test_landmark_sync_real.py``)."""

from __future__ import annotations

import numpy as np

from avatarv.data.curation.stages.sync import LipSync, syncnet_windows
from avatarv.world.clip import offset_audio
from tests.unit.test_eval_sync import _LoudnessOracle, _synthetic_talker


def _talker_with_desync(n=240, a=100, b=170, shift=8):
    frames, audio = _synthetic_talker(n, 0, seed=3)
    audio = audio.copy()
    audio[a * 640 : b * 640] = offset_audio(audio[a * 640 : b * 640], shift)
    boxes = np.tile(np.array([0, 0, 224, 224], np.float32), (n, 1))
    return frames, audio, boxes


def test_syncnet_windows_find_a_shifted_stretch():
    frames, audio, boxes = _talker_with_desync()
    usable = np.ones(len(frames), bool)
    off, conf, tracks = syncnet_windows(_LoudnessOracle(), frames, audio, boxes, usable, [[0, 240]], window=30, step=5)
    assert len(tracks) == 1 and tracks[0].offset == 0  # the video as a whole is in sync
    # windows reaching into the stretch (half a window either side) are left unscored here
    inside, outside = off[115:160], np.concatenate([off[20:85], off[200:225]])
    assert np.all(np.abs(inside) >= 6), inside  # the shifted stretch: |offset| ≈ 8
    assert np.all(np.abs(outside) <= 1), outside
    assert np.isnan(off[:2]).all()  # window columns are centred 2 frames into their 5-frame window


def test_syncnet_desync_rule_and_unusable_frames():
    stage = LipSync(min_offset=4, min_conf=0.5)
    assert stage.name == "lipsync" and stage.config.min_conf == 0.5
    offset = np.array([0, 0, 1, 8, 8, 8, -9, np.nan, 0, 0, 0], np.float32)
    conf = np.array([2, 2, 2, 2, 0.1, 2, 2, 2, 2, 2, 2], np.float32)
    desync, baseline = stage._syncnet_desync(offset, conf)
    assert baseline == 0.0
    assert desync.tolist() == [False, False, False, True, False, True, True, False, False, False, False]
    # frames another filter owns (or with no single face) never form a track
    frames, audio, boxes = _talker_with_desync()
    usable = np.ones(len(frames), bool)
    usable[90:200] = False
    off, _, _ = syncnet_windows(_LoudnessOracle(), frames, audio, boxes, usable, [[0, 240]], window=30, step=5)
    assert np.isnan(off[95:200]).all()
    # shots split tracks: nothing crosses the cut at 120
    off2, _, tracks = syncnet_windows(_LoudnessOracle(), frames, audio, boxes, np.ones(240, bool), [[0, 120], [120, 240]],
                                      window=30, step=5)
    assert [t.start_frame for t in tracks] == [0, 120]


def test_unknown_scorer_is_a_config_error():
    import pytest

    from avatarv.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown scorer"):
        LipSync(scorer="magic")


def test_short_window_refinement_trims_the_smeared_end_of_a_run():
    """Long windows flag a shifted stretch but smear its ends by up to half a window; ``refine_runs`` keeps only
    the frames where the stretch's offset beats the baseline in a short window. Runs never grow."""
    from avatarv.data.curation.stages.common import runs
    from avatarv.data.curation.stages.sync import refine_runs

    frames, audio, boxes = _talker_with_desync(a=100, b=170)
    off, conf, tracks = syncnet_windows(_LoudnessOracle(), frames, audio, boxes, np.ones(240, bool), [[0, 240]],
                                        window=30, step=5)
    raw, _ = LipSync(min_offset=4, min_conf=0.5, refine_columns=0)._syncnet_desync(off, conf, tracks)
    refined, _ = LipSync(min_offset=4, min_conf=0.5, refine_columns=9)._syncnet_desync(off, conf, tracks)
    (a0, b0), = runs(raw, 1)
    (a1, b1), = runs(refined, 1)
    assert b0 > 170 + 10  # the long windows run on past the end of the shifted stretch ...
    assert abs(b1 - 170) <= 3 and a1 == a0  # ... the refinement ends it where it ends
    assert not (refined & ~raw).any()
    assert refine_runs(np.zeros(240, bool), off, 0.0, tracks, 9).sum() == 0


def test_footage_picks_the_scorer(tmp_path):
    """auto: world footage (labels beside it) -> the world SyncNet; real footage -> the landmark SyncNet, or the
    public SyncNet when its weights are given."""
    import json

    import pytest

    from avatarv.data.curation.stages.sync import is_world_footage
    from avatarv.errors import ConfigError

    raw = tmp_path / "raw_000.mp4"
    (tmp_path / "raw_000.json").write_text(json.dumps({"shots": [], "intervals": [],
                                                       "duplicates": [{"file": "raw_000_dup0_crop.mp4"}]}))
    clip = tmp_path / "clip.mp4"
    (tmp_path / "clip.json").write_text(json.dumps({"mouth_lag_frames": 2}))
    real = tmp_path / "interview.mp4"
    (tmp_path / "interview.json").write_text(json.dumps({"title": "an interview"}))  # a json that is not the world's
    assert is_world_footage(raw) and is_world_footage(clip) and is_world_footage(tmp_path / "raw_000_dup0_crop.mp4")
    assert not is_world_footage(real) and not is_world_footage(tmp_path / "raw_000_dup9_crop.mp4")
    assert not is_world_footage(tmp_path / "nothing_beside.mp4")
    assert LipSync().scorer_for(raw) == "syncnet" and LipSync().scorer_for(real) == "landmark"
    assert LipSync(syncnet_weights="/models/syncnet_v2.model").scorer_for(real) == "syncnet"
    assert LipSync(footage="world").scorer_for(real) == "syncnet"
    assert LipSync(footage="real").scorer_for(raw) == "landmark"
    assert LipSync(footage="world", syncnet_weights="").scorer_for(raw) == "envelope"
    assert LipSync(scorer="envelope").scorer_for(real) == "envelope"
    with pytest.raises(ConfigError, match="unknown footage"):
        LipSync(footage="film")


def test_landmark_windows_find_a_shifted_stretch_on_a_world_clip():
    """The landmark scorer's windows on a held-out world clip (lips from its labels) whose sound is 8 frames early
    over frames 110..190: windows inside read L + 8, windows outside L (the identity's mouth lag)."""
    from avatarv.data.curation.stages.sync import landmark_windows
    from avatarv.eval.landmark_sync import LipTrack, load_landmark_sync
    from avatarv.world import make_clip

    clip = make_clip(1_000_021, 100_005, 12.0, 128, 0)
    lag = clip.meta["mouth_lag_frames"]
    audio = clip.audio.copy()
    audio[110 * 640 : 190 * 640] = offset_audio(audio[110 * 640 : 190 * 640], 8)
    track = LipTrack.from_landmarks(clip.labels.landmarks, "ibug")
    n = len(clip.frames)
    off, conf, tracks = landmark_windows(load_landmark_sync(), track, audio, np.ones(n, bool), [[0, n]], 30, 5)
    assert len(tracks) == 1 and abs(tracks[0].offset - lag) <= 1
    inside, outside = off[135:165], np.concatenate([off[20:85], off[215:270]])
    assert np.mean(np.abs(inside - (lag + 8)) <= 1) >= 0.8, inside
    assert np.mean(np.abs(outside - lag) <= 1) >= 0.9, outside
    # a stretch without a face is never scored
    track.lips[60:90] = np.nan
    off2, _, tracks2 = landmark_windows(load_landmark_sync(), track, audio, np.ones(n, bool), [[0, n]], 30, 5)
    assert len(tracks2) == 2 and np.isnan(off2[62:88]).all()
