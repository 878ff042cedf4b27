"""The cross-scene benchmark (seed, "Evaluation Setup"): a manifest of cases and a runner for any system.

Each case is one identity seen in two clips from different scenes: the **reference** clip, and the **driving**
clip whose first frame (the scene) and audio drive the generation. The scene image comes from one of three
sources: ``same`` (the reference's own scene), ``cross`` (another real video of the person: the driving clip's
first frame) or ``generated`` (made by the identity-preserving image engine). The ground truth of a case is the
driving clip itself, so a *passthrough* system that returns it scores the table's "Ground Truth" row.

Manifest (``manifest.json`` in the benchmark folder; paths relative to it)::

    {"name": "world-70", "version": 1,
     "cases": [{"case_id": "c000", "identity": "id007", "scene": "cross",
                "reference": "refs/c000.mp4", "driving": "driving/c000.mp4",
                "scene_image": "scenes/c000.png", "audio": null, "prompt": "a person talking"}]}

``audio`` overrides the driving clip's sound when given; ``scene_image`` may be null for ``cross`` (the driving
clip's first frame is the scene then).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from avatarv.errors import InputError
from avatarv.eval.face_tracks import MIN_TRACK as MIN_SYNC_TRACK
from avatarv.eval.protocol import CaseResult, write_summary

SCENE_SOURCES = ("same", "cross", "generated")
MANIFEST_NAME = "manifest.json"


@dataclass
class BenchmarkCase:
    case_id: str
    identity: str
    scene: str  # same | cross | generated
    reference: Path
    driving: Path
    scene_image: Path | None = None
    audio: Path | None = None
    prompt: str = ""

    def to_json(self, root: Path) -> dict:
        d = asdict(self)
        for key in ("reference", "driving", "scene_image", "audio"):
            if d[key] is not None:
                d[key] = str(Path(d[key]).relative_to(root)) if Path(d[key]).is_relative_to(root) else str(d[key])
        return d


@dataclass
class Manifest:
    name: str
    cases: list[BenchmarkCase] = field(default_factory=list)
    root: Path = field(default_factory=Path)
    version: int = 1
    eval_options: dict = field(default_factory=dict)  # e.g. {"min_face_size": 25.6} for small world faces

    @classmethod
    def load(cls, folder: str | Path, check_files: bool = True) -> Manifest:
        """Reads ``folder/manifest.json``; every problem is an ``InputError`` naming the case and field."""
        root = Path(folder)
        path = root / MANIFEST_NAME if root.is_dir() else root
        root = path.parent
        if not path.is_file():
            raise InputError(f"no {MANIFEST_NAME} (expected a benchmark folder)", path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"not valid JSON (line {err.lineno})", path) from err
        if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
            raise InputError('expected {"name": ..., "cases": [...]}', path)
        cases, seen = [], set()
        for i, raw in enumerate(data["cases"]):
            where = f"case {i}"
            try:
                case_id = str(raw["case_id"])
                where = f"case {case_id}"
                scene = str(raw["scene"])
                case = BenchmarkCase(
                    case_id=case_id,
                    identity=str(raw["identity"]),
                    scene=scene,
                    reference=root / raw["reference"],
                    driving=root / raw["driving"],
                    scene_image=root / raw["scene_image"] if raw.get("scene_image") else None,
                    audio=root / raw["audio"] if raw.get("audio") else None,
                    prompt=str(raw.get("prompt", "")),
                )
            except (KeyError, TypeError) as err:
                raise InputError(f"{where}: missing or bad field {err}", path) from err
            if case_id in seen:
                raise InputError(f"{where}: duplicate case_id", path)
            seen.add(case_id)
            if scene not in SCENE_SOURCES:
                raise InputError(f"{where}: scene {scene!r} is not one of {SCENE_SOURCES}", path)
            if scene == "generated" and case.scene_image is None:
                raise InputError(f"{where}: a generated-scene case needs its scene_image", path)
            if check_files:
                for name in ("reference", "driving", "scene_image", "audio"):
                    f = getattr(case, name)
                    if f is not None and not f.is_file():
                        raise InputError(f"{where}: {name} file missing: {f}", path)
            cases.append(case)
        return cls(name=str(data.get("name", root.name)), cases=cases, root=root, version=int(data.get("version", 1)),
                   eval_options=dict(data.get("eval_options", {})))

    def save(self, folder: str | Path | None = None) -> Path:
        root = Path(folder) if folder is not None else self.root
        root.mkdir(parents=True, exist_ok=True)
        data = {"name": self.name, "version": self.version, "eval_options": self.eval_options,
                "cases": [c.to_json(root) for c in self.cases]}
        path = root / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
        return path


class System(Protocol):
    """Anything that turns a case into a video file: our pipeline, a baseline, the ground truth."""

    name: str

    def generate(self, case: BenchmarkCase, out_dir: Path) -> Path: ...


class PassthroughSystem:
    """Returns the driving clip itself: the ground-truth row of the table."""

    name = "passthrough"

    def generate(self, case: BenchmarkCase, out_dir: Path) -> Path:
        return case.driving


def _pipeline_system(**kw) -> System:
    from avatarv.eval.systems import PipelineSystem

    return PipelineSystem(**kw)


def _image_reference_system(**kw) -> System:
    from avatarv.eval.systems import PipelineSystem

    return PipelineSystem(reference_mode="image", **kw)


def _vae_roundtrip_system(**kw) -> System:
    from avatarv.eval.systems import VAERoundTripSystem

    return VAERoundTripSystem(**kw)


SYSTEMS: dict[str, Callable[..., System]] = {
    "passthrough": PassthroughSystem,
    "avatarv": _pipeline_system,  # our pipeline (--checkpoint DIR, or random weights of --preset)
    "avatarv-image-ref": _image_reference_system,  # the ablation: the reference's first frame only
    "vae-roundtrip": _vae_roundtrip_system,  # the driving clip through --checkpoint's VAE: the pixel metrics' ceiling
}


def get_system(name: str, **kwargs) -> System:
    if name not in SYSTEMS:
        raise InputError(f"unknown system {name!r} (choose from {sorted(SYSTEMS)})")
    return SYSTEMS[name](**kwargs) if name != "passthrough" else SYSTEMS[name]()


Metric = Callable[[BenchmarkCase, Path, CaseResult], None]


FACE_BOXES = ("detect", "driving")


def _check_face_boxes(boxes: str) -> None:
    if boxes not in FACE_BOXES:
        raise InputError(f"unknown face boxes {boxes!r} (choose from {list(FACE_BOXES)})")


def face_metric(embedder=None, boxes: str = "detect") -> Metric:
    """Face similarity of the output to the case's reference video (2 fps, trimmed mean) -> ``face_sim``.

    ``boxes``: ``detect`` finds the faces in the output; ``driving`` takes them from the case's driving clip at
    the same frames (world benchmarks: the scene image fixes where the person is), so an output whose face
    the detector misses is scored low instead of dropped."""
    from avatarv.eval.identity import DlibResNetEmbedder, face_similarity

    _check_face_boxes(boxes)
    embedder = embedder or DlibResNetEmbedder()

    def run(case: BenchmarkCase, video: Path, result: CaseResult) -> None:
        sim = face_similarity(case.reference, video, embedder, boxes_from=case.driving if boxes == "driving" else None)
        result.add_per_frame("face_sim", sim.per_frame)
        result.meta["face_backend"] = sim.backend
        result.meta["face_boxes"] = boxes

    return run


def quality_metric(scorer=None) -> Metric:
    """Perceptual quality of the output (2 fps, trimmed mean) -> ``quality``."""
    from avatarv.eval.quality import ClassicalNRQuality, video_quality

    scorer = scorer or ClassicalNRQuality()

    def run(case: BenchmarkCase, video: Path, result: CaseResult) -> None:
        q = video_quality(video, scorer)
        result.add_per_frame("quality", q["per_frame"])
        result.meta["quality_backend"] = q["backend"]

    return run


def sync_metric(model, weights: str = "", boxes: str = "detect", **kwargs) -> Metric:
    """SyncNet on the output -> ``sync_c``, ``sync_d``, ``sync_offset`` (whole-video numbers, not per frame).

    ``boxes="driving"``: the face tracks are found in the case's driving clip (cut to the output's length)
    and cropped from the output, as ``face_metric`` does."""
    from avatarv.eval.inputs import as_video
    from avatarv.eval.sync_video import evaluate_sync_video, face_tracks

    _check_face_boxes(boxes)

    def run(case: BenchmarkCase, video: Path, result: CaseResult) -> None:
        if boxes == "driving":
            out = as_video(video, require_audio=True)
            track_kw = {k: kwargs[k] for k in ("detect_every", "min_track", "min_face_size") if k in kwargs}
            tracks = clip_tracks(face_tracks(as_video(case.driving), **track_kw), out.num_frames,
                                 kwargs.get("min_track", MIN_SYNC_TRACK))
            r = evaluate_sync_video(out, model, tracks=tracks, **kwargs)
        else:
            r = evaluate_sync_video(video, model, **kwargs)
        result.meta["sync_boxes"] = boxes
        result.metrics.update({"sync_c": r.sync_c, "sync_d": r.sync_d, "sync_offset": float(r.offset or 0)})
        result.meta["sync_tracks"] = [t.to_json() for t in r.tracks]
        result.meta["sync_weights"] = weights

    return run


def clip_tracks(tracks: list, num_frames: int, min_track: int) -> list:
    """Face tracks cut to the first ``num_frames`` frames; those left shorter than ``min_track`` are dropped."""
    from avatarv.eval.face_tracks import FaceTrack

    out = []
    for t in tracks:
        keep = t.frames < num_frames
        if keep.sum() >= min_track:
            out.append(FaceTrack(t.frames[keep], t.boxes[keep]))
    return out


def output_behaviour(video: Path, analyzer=None) -> tuple[dict[str, float], dict[str, float], str]:
    """(pixel-space behaviour, motion-stream-space behaviour, the stream's source) of an output video: the
    stream from its generated motion track when one lies beside it (``<case>.motion.npz``: "generated stream"),
    else from its pixels through the stream's representation ("pixels")."""
    from avatarv.eval.behaviour import video_signals
    from avatarv.eval.motion_stream import track_behaviour, video_stream_behaviour
    from avatarv.pipelines.motion_track import motion_track_path
    from avatarv.world.analyzer import behaviour_stats
    from avatarv.world.analyzer.behaviour import FPS  # what behaviour_stats assumes of every video

    signals, audio = video_signals(video, analyzer)
    track = motion_track_path(video)
    if track.is_file():
        return behaviour_stats(signals, audio), track_behaviour(track, audio), "generated stream"
    return behaviour_stats(signals, audio), video_stream_behaviour(signals, audio, FPS), "pixels"


def behaviour_metric(analyzer=None) -> Metric:
    """Behaviour similarity of the output to the reference video (world analyzer signals) -> ``behaviour``;
    and in motion-stream space (``avatarv.eval.motion_stream``) -> ``motion_behaviour``: from the output's
    generated motion track when the system wrote one beside the video (``<case>.motion.npz``), else from its
    pixels through the stream's representation (ground truth, systems without a stream)."""
    from avatarv.eval.behaviour import behaviour_similarity, video_signals
    from avatarv.eval.motion_stream import behaviour_in_both_spaces

    cache: dict[Path, dict] = {}
    motion_cache: dict[Path, dict] = {}

    def run(case: BenchmarkCase, video: Path, result: CaseResult) -> None:
        if case.reference not in cache:
            cache[case.reference], motion_cache[case.reference] = behaviour_in_both_spaces(
                *video_signals(case.reference, analyzer))
        out, motion, source = output_behaviour(video, analyzer)
        result.metrics["behaviour"] = behaviour_similarity(out, cache[case.reference])
        result.meta["behaviour_stats"] = out
        result.meta["behaviour_reference"] = str(case.reference)
        result.metrics["motion_behaviour"] = behaviour_similarity(motion, motion_cache[case.reference])
        result.meta["motion_behaviour_stats"] = motion
        result.meta["motion_behaviour_source"] = source

    run.reference_stats = cache  # type: ignore[attr-defined]  # for behaviour identification over the run
    run.motion_reference_stats = motion_cache  # type: ignore[attr-defined]
    return run


def behaviour_identification_of_run(results: list[CaseResult], reference_stats: dict,
                                    space: str = "behaviour") -> dict | None:
    """Behaviour identification over a run: each output is matched against every case's reference behaviour;
    correct when its own reference wins (``accuracy``, chance 1/K). ``mean_percentile`` (chance 0.5) and
    ``mean_margin`` (chance 0) grade the own reference's rank among all (``rank_scores``): with K = 18 and a few
    dozen trials, top-1 accuracy alone cannot tell weak signal from none. Each result's ``meta`` gets its own
    ``<space>_rank``. ``space``: ``behaviour`` (pixels) or ``motion_behaviour`` (motion-stream space; the
    reference stats must be in the same space). ``None`` with fewer than 2 references."""
    from avatarv.eval.behaviour import rank_scores

    refs = list(reference_stats)
    scored = [r for r in results if f"{space}_stats" in r.meta and Path(r.meta["behaviour_reference"]) in reference_stats]
    if len(refs) < 2 or not scored:
        return None
    table = [reference_stats[k] for k in refs]
    ranks = []
    for r in scored:
        rank = rank_scores(r.meta[f"{space}_stats"], table, refs.index(Path(r.meta["behaviour_reference"])))
        r.meta[f"{space}_rank"] = rank
        ranks.append(rank)
    return {"accuracy": sum(x["hit"] for x in ranks) / len(ranks), "chance": 1 / len(refs), "k": len(refs),
            "trials": len(ranks), "mean_percentile": float(np.mean([x["percentile"] for x in ranks])),
            "mean_margin": float(np.mean([x["margin"] for x in ranks]))}


def system_fingerprint(system: System) -> str:
    """What makes two runs of a system the same run: its ``fingerprint`` attribute, else its name."""
    return str(getattr(system, "fingerprint", system.name))


def finished_case(path: Path, fingerprint: str) -> CaseResult | None:
    """The finished case at ``path`` when the same system wrote it and its video is still there, else None."""
    if not path.is_file():
        return None
    try:
        old = CaseResult.read(path)
    except (ValueError, KeyError):  # a damaged JSON is redone, not trusted
        return None
    video = old.meta.get("video")
    if old.meta.get("system_fingerprint") != fingerprint or not video or not Path(video).is_file():
        return None
    return old


def run_benchmark(
    manifest: Manifest,
    system: System,
    out_dir: str | Path,
    metrics: Sequence[Metric],
    progress: bool = True,
    report: bool = True,
    resume: bool = True,
) -> dict:
    """Generates (or takes) each case's video, scores it, writes ``out_dir/cases/<id>.json`` and
    ``out_dir/summary.json``; returns the summary. A case whose metric fails keeps NaN for it and the error in
    its ``meta`` (one broken case does not stop a 70-case run).

    ``resume``: a case already finished in ``out_dir`` by the same system (``system_fingerprint``: name,
    weights, steps, seed, length) keeps its video (generation is the expensive part; its JSON is written only
    after the video is complete) and is scored again, so a killed run continues where it stopped and every
    metric covers every case."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    videos_dir = out_dir / "videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    results = []
    fingerprint = system_fingerprint(system)
    for case in tqdm(manifest.cases, desc=f"{system.name} on {manifest.name}", disable=not progress, unit="case"):
        result = CaseResult(case.case_id, meta={
            "identity": case.identity, "scene": case.scene, "system": system.name, "reference": str(case.reference),
            "scene_image": str(case.scene_image or case.driving), "driving": str(case.driving),
            "system_fingerprint": fingerprint})
        old = finished_case(out_dir / "cases" / f"{case.case_id}.json", fingerprint) if resume else None
        if old is not None:  # its video and what the system said of it; the metrics are measured again
            result.meta.update({k: v for k, v in old.meta.items()
                                if k not in result.meta and k != "errors" and not k.endswith("_rank")})
            video = Path(old.meta["video"])
        else:
            video = system.generate(case, videos_dir)
            result.meta["video"] = str(video)
            result.meta.update(getattr(system, "last_meta", {}))  # what the system says about this case, if anything
        for metric in metrics:
            try:
                metric(case, video, result)
            except (InputError, ValueError) as err:
                result.meta.setdefault("errors", []).append(str(err))  # type: ignore[union-attr]
        result.write(out_dir / "cases")
        results.append(result)
    by_scene = {
        scene: write_summary([r for r in results if r.meta["scene"] == scene], out_dir / f"summary_{scene}.json")["summary"]
        for scene in SCENE_SOURCES
        if any(r.meta["scene"] == scene for r in results)
    }
    extra = {"system": system.name, "benchmark": manifest.name, "by_scene": by_scene}
    for metric in metrics:
        if hasattr(metric, "reference_stats"):
            extra["behaviour_identification"] = behaviour_identification_of_run(results, metric.reference_stats)
            extra["motion_behaviour_identification"] = behaviour_identification_of_run(
                results, metric.motion_reference_stats, space="motion_behaviour")
            for result in results:  # each case now knows its own reference's rank among all
                if "behaviour_rank" in result.meta or "motion_behaviour_rank" in result.meta:
                    result.write(out_dir / "cases")
    summary = write_summary(results, out_dir / "summary.json", extra=extra)
    if report:
        from avatarv.eval.report import write_report

        summary["report"] = str(write_report(out_dir))
    return summary
