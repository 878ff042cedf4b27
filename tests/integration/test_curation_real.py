"""The curation stages on real talking-head clips (../shared/real, read in place through symlinks; skipped
when absent): real faces are found, clipped, tiered, transcribed, and nothing fails."""

from __future__ import annotations

import pytest

from avatarv.data.curation.engine import Engine
from avatarv.data.curation.pipeline import Pipeline
from avatarv.data.curation.stages.clipping import SmartClipping
from avatarv.data.curation.stages.faces import Faces
from avatarv.data.curation.stages.normalise import Normalise
from avatarv.data.curation.stages.ocr import Ocr
from avatarv.data.curation.stages.prefilter import Prefilter
from avatarv.data.curation.stages.scenes import Scenes
from avatarv.data.curation.stages.speech import Speech
from avatarv.data.curation.stages.sync import LipSync
from avatarv.data.curation.stages.tiers import Tiers
from avatarv.data.curation.stages.visual import Visual
from avatarv.data.curation.store import StateStore


@pytest.mark.slow
def test_stages_on_real_clips(real_clips, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    for p in real_clips[:2]:
        (inp / p.name).symlink_to(p)  # never copied
    out = tmp_path / "out"
    stages = [Normalise(max_side=256), Prefilter(), Scenes(), Visual(), Faces(detect_every=5), Ocr(every=50),
              LipSync(), SmartClipping(min_len=40), Tiers(), Speech()]
    report = Engine(Pipeline(stages), inp, out).run("local", workers=2)
    assert report.failures == [], report.failures
    store = StateStore(out)
    for p in real_clips[:2]:
        def values(stage, item=p.name):
            row = next(r for r in store.rows() if r["stage"] == stage and r["item"] == item)
            return store.load_artifact(stage, item, row["key"]).values

        faces = values("faces")
        assert faces["face_fraction"] > 0.9 and faces["second_speaker"] == []
        assert values("prefilter")["static"] == []
        # no false picture defects on clean real clips (blur, exposure, shake, captions, cuts)
        vis = values("visual")
        assert vis["blur"] == [] and vis["dark"] == [] and vis["shake"] == [], vis
        assert values("ocr")["text"] == [] and values("scenes")["transitions"] == []
        clips = values("clips")["clips"]
        assert clips, p.name
        tiers = values("tiers")["clips"]
        assert all(t["tier"] in "ABC" and 1.0 <= t["quality"] <= 5.0 for t in tiers)
        speech = values("speech")["clips"]
        assert any(len(s["transcript"].split()) >= 3 for s in speech), speech
        assert any(s["speakers"] >= 1 for s in speech) and all(s["speakers"] >= 0 for s in speech)
