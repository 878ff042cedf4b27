"""The seed's curation stages. ``REGISTRY`` maps the names used in pipeline TOML files to classes;
``PRESETS`` are built-in pipelines (``avatarv curate run prefilter ...``)."""

from __future__ import annotations

_P = "avatarv.data.curation.stages"
REGISTRY: dict[str, str] = {
    "normalise": f"{_P}.normalise:Normalise",
    "prefilter": f"{_P}.prefilter:Prefilter",
}


def _prefilter():
    from avatarv.data.curation.stages.normalise import Normalise
    from avatarv.data.curation.stages.prefilter import Prefilter

    return [Normalise(), Prefilter()]


PRESETS = {"prefilter": _prefilter}
