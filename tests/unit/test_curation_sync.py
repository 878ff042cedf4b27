"""The lipsync stage's SyncNet desync scorer on an oracle embedder (the trained scorer runs on world footage in
``tests/integration/test_curation_filters.py``)."""

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
