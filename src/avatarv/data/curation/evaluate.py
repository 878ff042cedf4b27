"""Precision and recall of the filters against the world's labelled raw footage (``world/raw.py``).

Interval filters (static, choppy, no person, second speaker, text, blur, shake, dark, desync) are scored on
one-second windows (25 frames): a window is positive when at least half of its frames carry the label,
negative when none do, and left out otherwise (a boundary window), and also left out when it touches a shot
transition (a fade is dark and a dissolve shows two people for a moment: not a defect of the footage). A
window is detected when at least half of its frames are flagged. Windows in "dropped frame" stretches are left
out for choppy (isolated single repeats, a different defect the table does not score).

Content filters (screencast, game, photo from ``content``; synthetic voice from ``synthetic_speech``) are
scored the same way against the world's whole-shot content kinds (``world/raw.py`` ``CONTENT_DEFECTS``). Those
shots are what the older filters are not about (a screencast has no person and is full of text, a photo's
mouth never moves with the voice-over): windows touching a content shot are left out of the older rows, as
windows touching a transition are.

Cuts are events: a detected boundary matches a labelled cut, fade or dissolve when it falls within
``CUT_TOLERANCE`` frames of its interval. Duplicates are item pairs: (copy, source video) from the labels, and
(copy, copy) when the two copied stretches share at least ``DUP_MIN_OVERLAP`` frames (a shorter overlap
is not scored either way). The world also makes duplicates its copy labels do not name: its raw videos draw
people, places and sentences from small pools, and the same person saying the same sentence in the same place
(deterministic speech, lips driven by it) is the same content in two videos. A found pair outside the copy
labels whose matched stretches show such a shared (person, voice, place, sentence) (``content_keys``), or that
was joined through a partner it relates to only in these ways, is left out of the score, not counted as right.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avatarv.data.curation.store import StateStore

WINDOW = 25
CUT_TOLERANCE = 3
DUP_MIN_OVERLAP = 50  # two copies sharing >= 2 s (the shortest clip) are duplicates; sharing less is not scored
TRANSITIONS = ("cut", "fade", "dissolve")
# filter name -> (stage, values key holding [start, end) runs, label type)
INTERVAL_FILTERS = {
    "static": ("prefilter", "static", "static"),
    "choppy": ("prefilter", "choppy", "choppy"),
    "no person": ("faces", "no_person", "no_person"),
    "second speaker": ("faces", "second_speaker", "second_speaker"),
    "text": ("ocr", "text", "text"),
    "blur": ("visual", "blur", "blur"),
    "shake": ("visual", "shake", "shake"),
    "dark": ("visual", "dark", "dark"),
    "desync": ("lipsync", "desync", "desync"),
    "screencast": ("content", "screencast", "screencast"),
    "game": ("content", "game", "game"),
    "photo": ("content", "photo", "photo"),
    "synthetic voice": ("synthetic_speech", "synthetic", "synthetic_voice"),
}
CONTENT_LABELS = ("screencast", "game", "photo", "synthetic_voice")


def _mask(intervals, n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    for a, b in intervals:
        m[max(int(a), 0) : min(int(b), n)] = True
    return m


def latest_artifacts(store: StateStore, stage: str, keys: dict[tuple[str, str], str] | None = None) -> dict[str, dict]:
    """item -> values of the most recently finished committed task of ``stage``; with ``keys`` ((stage, item)
    -> task key, e.g. from ``Engine.plan()``), exactly those tasks: a store holds every config ever run, and
    "latest" is then the last one that ran, not the one a pipeline asks for."""
    rows = [r for r in store.rows() if r["stage"] == stage and r["status"] in ("done", "unavailable")]
    if keys is not None:
        rows = [r for r in rows if keys.get((stage, r["item"])) == r["key"]]
    out = {}
    for r in sorted(rows, key=lambda r: r["finished"] or 0):
        if store.has_artifact(stage, r["item"], r["key"]):
            art = store.load_artifact(stage, r["item"], r["key"])
            out[r["item"]] = art.values if art.ok else {"unavailable": art.reason}
    return out


class Tally:
    def __init__(self):
        self.tp = self.fp = self.fn = 0
        self.positives = 0

    def add(self, detected: bool, positive: bool) -> None:
        self.positives += positive
        self.tp += detected and positive
        self.fp += detected and not positive
        self.fn += positive and not detected

    def row(self) -> dict:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")
        return {"precision": p, "recall": r, "tp": self.tp, "fp": self.fp, "fn": self.fn, "positives": self.positives}


def filter_scores(out_dir: str | Path, input_dir: str | Path, keys: dict[tuple[str, str], str] | None = None
                  ) -> dict[str, dict]:
    """The per-filter table for every raw video in ``input_dir`` that has its ``.json`` labels (the artifacts
    of ``keys`` when given, see ``latest_artifacts``)."""
    store = StateStore(out_dir)
    arts = {s: latest_artifacts(store, s, keys) for s in ("prefilter", "faces", "ocr", "visual", "lipsync", "scenes",
                                                           "dedup", "content", "synthetic_speech")}
    store.close()
    tallies = {name: Tally() for name in [*INTERVAL_FILTERS, "cuts", "duplicates"]}
    labelled = sorted(Path(input_dir).glob("raw_*.json"))
    for lab_path in labelled:
        doc = json.loads(lab_path.read_text())
        item = doc["video"]
        n = int(doc["n_frames"])
        ivs = doc["intervals"]
        near_transition = _mask([(i["start"] - CUT_TOLERANCE, i["end"] + CUT_TOLERANCE) for i in ivs
                                 if i["type"] in TRANSITIONS], n)
        dropped = _mask([(i["start"], i["end"]) for i in ivs if i["type"] == "dropped"], n)
        content = _mask([(i["start"] - CUT_TOLERANCE, i["end"] + CUT_TOLERANCE) for i in ivs
                         if i["type"] in CONTENT_LABELS], n)
        for name, (stage, key, label) in INTERVAL_FILTERS.items():
            vals = arts[stage].get(item)
            if vals is None or key not in vals:
                continue
            truth = _mask([(i["start"], i["end"]) for i in ivs if i["type"] == label], n)
            flagged = _mask(vals[key], n)
            for a in range(0, n - WINDOW + 1, WINDOW):
                w = slice(a, a + WINDOW)
                if near_transition[w].any() or (name == "choppy" and dropped[w].any()):
                    continue
                if label not in CONTENT_LABELS and content[w].any():
                    continue
                frac = truth[w].mean()
                if 0 < frac < 0.5:
                    continue
                tallies[name].add(bool(flagged[w].mean() >= 0.5), bool(frac >= 0.5))
        if item in arts["scenes"]:
            found = list(arts["scenes"][item]["transitions"])
            trans = [i for i in ivs if i["type"] in TRANSITIONS]
            used = set()
            for i in trans:
                hit = next((b for b in found if i["start"] - CUT_TOLERANCE <= b <= i["end"] + CUT_TOLERANCE
                            and b not in used), None)
                if hit is not None:
                    used.add(hit)
                tallies["cuts"].add(hit is not None, True)
            for b in found:
                if b not in used:
                    tallies["cuts"].add(True, False)
    dedup = next(iter(arts["dedup"].values()), None)
    if dedup is not None and "pairs" in dedup:
        truth_pairs, ignored = set(), set()
        for lab_path in labelled:
            doc = json.loads(lab_path.read_text())
            dups = doc["duplicates"]
            for d in dups:
                truth_pairs.add(frozenset((d["file"], doc["video"])))
            for d in dups:  # two copies of overlapping stretches are copies of each other
                for e in dups:
                    overlap = min(d["end"], e["end"]) - max(d["start"], e["start"])
                    if d["file"] < e["file"] and overlap >= DUP_MIN_OVERLAP:
                        truth_pairs.add(frozenset((d["file"], e["file"])))
                    elif d["file"] < e["file"] and overlap > 0:
                        ignored.add(frozenset((d["file"], e["file"])))
        found_pairs = {frozenset((p["a"], p["b"])) for p in dedup["pairs"]}
        ignored |= unlabelled_content_pairs(dedup["pairs"], truth_pairs, labelled)
        for p in (truth_pairs | found_pairs) - ignored:
            tallies["duplicates"].add(p in found_pairs, p in truth_pairs)
    return {k: t.row() for k, t in tallies.items() if t.tp + t.fp + t.fn > 0 or t.positives}


def content_keys(labelled: list[Path]) -> Callable[[str, int, int], set[tuple]]:
    """``keys(item, start, end)``: the (identity, speaker, scene, sentence) of every labelled shot that frames
    ``[start, end)`` of ``item`` (a raw video or a copy of one) overlap."""
    source: dict[str, tuple[str, int]] = {}
    shots: dict[str, list[dict]] = {}
    for lab_path in labelled:
        doc = json.loads(lab_path.read_text())
        source[doc["video"]] = (doc["video"], 0)
        shots[doc["video"]] = doc["shots"]
        for d in doc["duplicates"]:
            source[d["file"]] = (doc["video"], d["start"])

    def keys(item: str, start: int, end: int) -> set[tuple]:
        if item not in source:
            return set()
        video, off = source[item]
        out = set()
        for sh in shots[video]:
            if sh["start"] < end + off and sh["end"] > start + off:
                out |= {(sh["identity_id"], sh.get("speaker_id"), sh["scene_id"], t) for t in sh.get("sentences", [])}
        return out

    return keys


def unlabelled_content_pairs(pairs: list[dict], truth: set[frozenset], labelled: list[Path]) -> set[frozenset]:
    """Found pairs outside ``truth`` that are the same content by the labels' shots (module docstring)."""
    keys = content_keys(labelled)
    same = set()
    for p in pairs:
        pair = frozenset((p["a"], p["b"]))
        if pair not in truth and "a_frames" in p and keys(p["a"], *p["a_frames"]) & keys(p["b"], *p["b_frames"]):
            same.add(pair)
    for p in pairs:  # joined through a partner: fine when each link is a labelled copy or the same content
        pair = frozenset((p["a"], p["b"]))
        if pair not in truth and "partner" in p:
            links = [frozenset((x, p["partner"])) for x in (p["a"], p["b"])]
            if all(link in truth or link in same for link in links):
                same.add(pair)
    return same


def format_table(scores: dict[str, dict]) -> str:
    lines = ["| filter | precision | recall | tp | fp | fn |", "|---|---|---|---|---|---|"]
    for k, r in scores.items():
        lines.append(f"| {k} | {r['precision']:.2f} | {r['recall']:.2f} | {r['tp']} | {r['fp']} | {r['fn']} |")
    return "\n".join(lines)


def _clip_truth(input_dir: Path) -> dict[str, tuple[list[dict], int]]:
    """item -> (shots of its source raw video, frame offset of the item in that video) for labelled items."""
    out = {}
    for lab_path in sorted(Path(input_dir).glob("raw_*.json")):
        doc = json.loads(lab_path.read_text())
        out[doc["video"]] = (doc["shots"], 0)
        for d in doc["duplicates"]:
            out[d["file"]] = (doc["shots"], d["start"])
    return out


def identity_graph_scores_clips(out_dir: str | Path, input_dir: str | Path,
                                keys: dict[tuple[str, str], str] | None = None) -> dict:
    """Cross-scene pair precision / recall on world clips whose ``.json`` holds ``identity_id`` and ``scene_id``
    (``keys``: this pipeline's task keys, as for ``filter_scores``)."""
    store = StateStore(out_dir)
    graph = next(iter(latest_artifacts(store, "identity_graph", keys).values()))
    store.close()
    labels = []
    for node in graph["clips"]:
        meta = json.loads((Path(input_dir) / node["item"]).with_suffix(".json").read_text())
        labels.append((meta["identity_id"], meta["scene_id"]))
    found = {(p["a"], p["b"]) for p in graph["cross_scene_pairs"]}
    t = Tally()
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            t.add((i, j) in found, labels[i][0] == labels[j][0] and labels[i][1] != labels[j][1])
    return {**t.row(), "clips": len(labels), "people_found": graph["people"],
            "people_true": len({lab[0] for lab in labels})}
