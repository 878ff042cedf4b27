"""The seed's curation stages. ``REGISTRY`` maps the names used in pipeline TOML files to classes;
``PRESETS`` are built-in pipelines (``avatarv curate run prefilter ...``)."""

from __future__ import annotations

_P = "avatarv.data.curation.stages"
REGISTRY: dict[str, str] = {
    "normalise": f"{_P}.normalise:Normalise",
    "prefilter": f"{_P}.prefilter:Prefilter",
    "scenes": f"{_P}.scenes:Scenes",
    "visual": f"{_P}.visual:Visual",
    "faces": f"{_P}.faces:Faces",
    "ocr": f"{_P}.ocr:Ocr",
    "lipsync": f"{_P}.sync:LipSync",
    "fingerprint": f"{_P}.dedup:Fingerprint",
    "dedup": f"{_P}.dedup:Dedup",
    "clips": f"{_P}.clipping:SmartClipping",
    "tiers": f"{_P}.tiers:Tiers",
    "speech": f"{_P}.speech:Speech",
    "captions": f"{_P}.speech:Captions",
    "identity": f"{_P}.identity:ClipIdentity",
    "identity_graph": f"{_P}.identity:IdentityGraph",
    "shards": f"{_P}.shards:Shards",
    "content": f"{_P}.content:Content",
    "synthetic_speech": f"{_P}.synthetic_speech:SyntheticSpeech",
    "categories": f"{_P}.categories:Categories",
}


def _prefilter():
    from avatarv.data.curation.stages.normalise import Normalise
    from avatarv.data.curation.stages.prefilter import Prefilter

    return [Normalise(), Prefilter()]


def _filters():
    from avatarv.data.curation.stages.content import Content
    from avatarv.data.curation.stages.dedup import Dedup, Fingerprint
    from avatarv.data.curation.stages.faces import Faces
    from avatarv.data.curation.stages.ocr import Ocr
    from avatarv.data.curation.stages.scenes import Scenes
    from avatarv.data.curation.stages.sync import LipSync
    from avatarv.data.curation.stages.synthetic_speech import SyntheticSpeech
    from avatarv.data.curation.stages.visual import Visual

    return [*_prefilter(), Scenes(), Visual(), Faces(), Ocr(), LipSync(), Fingerprint(), Dedup(), Content(),
            SyntheticSpeech()]


def _full():
    from avatarv.data.curation.stages.categories import Categories
    from avatarv.data.curation.stages.clipping import SmartClipping
    from avatarv.data.curation.stages.identity import ClipIdentity, IdentityGraph
    from avatarv.data.curation.stages.shards import Shards
    from avatarv.data.curation.stages.speech import Captions, Speech
    from avatarv.data.curation.stages.tiers import Tiers

    stages = [*_filters(), SmartClipping(), Tiers(), Speech(), Captions(), Categories(), ClipIdentity(),
              IdentityGraph()]
    return [*stages, Shards.after(stages)]  # reads speech, captions and categories when they are upstream


def _identity():
    from avatarv.data.curation.stages.clipping import SmartClipping
    from avatarv.data.curation.stages.faces import Faces
    from avatarv.data.curation.stages.identity import ClipIdentity, IdentityGraph
    from avatarv.data.curation.stages.scenes import Scenes
    from avatarv.data.curation.stages.visual import Visual

    clips = SmartClipping(inputs=("scenes", "visual", "faces", "prefilter"))
    return [*_prefilter(), Scenes(), Visual(), Faces(), clips, ClipIdentity(), IdentityGraph()]


PRESETS = {"prefilter": _prefilter, "filters": _filters, "full": _full, "identity": _identity}
