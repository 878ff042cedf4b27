"""Landmark SyncNet on the five real clips (../shared/real, read in place; skipped when absent): with their audio
shifted by +-2..+-10 frames (in memory) the offset moves with the shift to within +-1 frame of the clip's own
offset, the clips as they are read their (golden) offsets, the curation stage passes a real clip in sync and flags
its shifted copy, and ``avatarv eval sync`` scores real input with it. The table and figure:
``python benchmarks/landmark_sync_real.py``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_benchmark

bench = load_benchmark("landmark_sync_real")


@pytest.fixture(scope="module")
def tracks(real_clips):
    """Face-mesh lips and 16 kHz audio of every real clip, computed once for the module."""
    return bench.real_lip_tracks(real_clips[0].parent)


@pytest.fixture(scope="module")
def model():
    from avatarv.eval.landmark_sync import load_landmark_sync

    return load_landmark_sync()


# The clips' offsets as they are (golden values of the shipped weights). young_man_outdoor's source is itself out
# of sync: it reads -7 (audio 280 ms late) in every 4-s window with the highest Sync-C of the five, the model-free
# mouth-opening/loudness correlation peaks there too, and with its audio advanced 8 frames it reads +1 at the same
# confidence. woman_glasses_red_jacket (4.9 s) has no clear minimum (a flat distance curve, Sync-C 1.4): -13 is
# the scorer failing on it. man_suit_office's minimum is broad (+2..+4).
OWN_OFFSETS = {"man_suit_office": 4, "older_man_interview": 2, "woman_glasses_red_jacket": -13,
               "woman_selfie_expressive": -1, "young_man_outdoor": -7}


def test_shifted_real_audio_offsets_found_within_one_frame(tracks, model):
    assert len(tracks) == 5 and all(t.detected.mean() >= 0.95 for t, _ in tracks.values())
    rows = bench.shift_rows(model, tracks)
    s = bench.summary(rows)
    assert s["cases"] == 50
    # the target of issue 33: >= 90 % of the 50 shifted cases within +-1 frame of the clip's own offset + the
    # shift (own = the offset measured on the clip as it is: no ground truth says the sources are in sync) ...
    assert s["within_1_own"] >= 0.9, s
    # ... and every case whose own + shift lies inside the +-15 scan (5 cannot: -7 - 10, -13 - 4 ... -13 - 10)
    assert s["reachable"] == 45 and s["within_1_own_reachable"] >= 0.95, s
    # the unshifted clips: each reads its golden offset (see OWN_OFFSETS for what is believed right)
    own = s["unshifted_offsets"]
    assert all(abs(own[k] - v) <= 1 for k, v in OWN_OFFSETS.items()), own
    # Sync-C is higher in sync than with the audio shifted, on average
    assert s["sync_c_unshifted"] > s["sync_c_shifted"], s


def test_curation_landmark_scorer_passes_real_clips_and_flags_a_shifted_copy(tracks, real_clips):
    """The lipsync stage's default scorer on real input (landmark), per track and absolute: a real clip in sync has
    no desync and the same clip with its sound 8 frames early is flagged; young_man_outdoor, whose source is 7
    frames out of sync, is flagged, and its copy with the audio advanced 7 frames is not."""
    from avatarv.data.curation.stages.sync import LipSync
    from avatarv.media.read import read_video
    from avatarv.world.clip import offset_audio

    stage = LipSync()

    def run(name: str, shift: int):
        path = next(p for p in real_clips if p.stem == name)
        assert stage.scorer_for(path) == "landmark"
        video = read_video(path, fps=25.0, require_audio=True)
        if shift:
            video.audio = offset_audio(video.audio, shift)
        n = video.num_frames
        # face mesh of this clip measured once for the module (tracks)
        return stage._landmark(video, np.ones(n, bool), [[0, n]], {}, {}, tracks[name][0]).values

    ok = run("older_man_interview", 0)  # the longest (12 s) clip, small mouth movements
    assert ok["scorer"] == "landmark" and ok["desync"] == [] and abs(ok["landmark"]["offset"] - 2) <= 1, ok
    bad = run("older_man_interview", 8)
    assert bad["desync_fraction"] > 0.9 and abs(bad["landmark"]["offset"] - 10) <= 1, bad
    assert run("young_man_outdoor", 0)["desync_fraction"] > 0.9
    fixed = run("young_man_outdoor", 7)
    assert fixed["desync"] == [] and abs(fixed["landmark"]["offset"]) <= 1, fixed


def test_eval_sync_cli_uses_the_landmark_backend_on_real_input(real_clips, capsys):
    """``avatarv eval sync FILE`` with no SyncNet weights scores with the landmark SyncNet and says so; a bad
    ``--backend`` is one line and exit 2."""
    import json

    from avatarv.cli import main

    clip = str(next(p for p in real_clips if p.stem == "woman_selfie_expressive"))
    assert main(["eval", "sync", "--max-seconds", "4", clip]) == 0
    s = json.loads(capsys.readouterr().out.strip())
    assert s["backend"] == "landmark" and s["weights"].endswith("landmark_sync.safetensors")
    assert s["n_tracks"] == 1 and s["n_windows"] == 95 and s["tracks"][0]["start_frame"] == 0  # 100 frames - 5
    assert main(["eval", "sync", "--backend", "lips", clip]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--backend lips" in err[0]
