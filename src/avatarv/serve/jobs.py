"""One job, as a worker runs it: the existing pipeline, then the watermark and the C2PA signature.

``run_job(spec)`` is a plain function of files (a ``JobSpec`` in, a result dict out) so the same code runs
in a local worker process and on a Ray worker (``executors.py``; Ray needs the data folder on a shared file
system). Everything it writes lands in the attempt's own folder ``work/attempt-<n>/``:

    live.mp4       the streaming fMP4 the pipeline writes chunk by chunk (``/api/jobs/{id}/live``), each chunk
                   watermarked with the job's payload as it is written (``chunk_marker``)
    progress.json  phase, step / total (atomic rewrites; the server's event stream reads it)
    signed.mp4     the finished video: live.mp4 with the watermark's metadata (``tag_marked``, no re-encode), signed
                   (``sign_mp4``): the only file the server ever moves to ``video.mp4``

Moving it into place and marking the job finished is the server's job (``scheduler.py``), so a worker that
outlives a crashed server, or an attempt the server has given up on, never publishes anything.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from avatarv.serve.files import write_json

_PIPELINES: dict[tuple, object] = {}  # a worker process keeps its loaded model between jobs


@dataclass
class JobSpec:
    job_id: str
    attempt: int
    work_dir: str  # this attempt's folder (absolute)
    reference: str  # the avatar's reference video (absolute)
    watermark: str  # 16 hex digits: the payload embedded in every frame
    key_dir: str  # the server's C2PA key
    audio: str | None = None  # speech file, or
    text: str | None = None  # text to speak (the voice engine), with an optional
    voice: str | None = None  # voice sample
    prompt: str = ""
    seconds: float | None = None
    steps: int | None = None
    seed: int = 0
    checkpoint: str | None = None
    preset: str | None = None
    weights: str | None = None  # InfiniteTalk mode
    # InfiniteTalk mode: InfiniteTalkOptions fields the server sets (e.g. resolution, frame_num, offload-free sizes)
    infinitetalk: dict | None = None
    user: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Progress:
    def __init__(self, path: Path):
        self.path, self.state = path, {"phase": "starting", "step": 0, "total": 0, "updated": time.time()}
        self._last = 0.0

    def __call__(self, force: bool = False, **update) -> None:
        self.state.update(update, updated=time.time())
        now = time.monotonic()
        if force or now - self._last > 0.2:  # at most 5 writes a second
            write_json(self.path, self.state)
            self._last = now


def _speech(spec: JobSpec):
    from avatarv.media import read_audio

    if spec.audio is not None:
        return read_audio(spec.audio)
    from avatarv.voice import text_to_speech

    return text_to_speech(spec.text, None if spec.voice is None else Path(spec.voice))


def _pipeline(spec: JobSpec):
    from avatarv.pipelines.cli import PipelineSource

    key = (spec.checkpoint, spec.preset, spec.seed if spec.preset else None)
    if key not in _PIPELINES:
        source = PipelineSource(None if spec.checkpoint is None else Path(spec.checkpoint), spec.preset)
        _PIPELINES.clear()  # one model per worker: memory stays bounded
        _PIPELINES[key] = source.load(seed=spec.seed)
    return _PIPELINES[key]


def world_options(spec: JobSpec, frame_filter=None):
    """A job's ``GenerationOptions``: the checkpoint's own sampling (a distilled student: its steps, sampler and
    guidance scales from ``pipeline.json``) unless the request names the steps, as ``avatarv generate`` does."""
    from avatarv.pipelines.cli import PipelineSource, sampling_options
    from avatarv.pipelines.generate import GenerationOptions

    source = PipelineSource(None if spec.checkpoint is None else Path(spec.checkpoint), spec.preset)
    return GenerationOptions(seconds=spec.seconds, seed=spec.seed, prompt=spec.prompt, frame_filter=frame_filter,
                             **sampling_options(source.sampling_defaults(), spec.steps, None, None))


def _generate_world(spec: JobSpec, speech, live: Path, progress: Progress, frame_filter=None) -> dict:
    """What ``avatarv generate`` does (``pipelines.cli.run_generation``), with progress to a file."""
    from avatarv.media import read_video

    opts = world_options(spec, frame_filter)
    reference = read_video(spec.reference)
    progress(phase="loading the model", force=True)
    pipe = _pipeline(spec)
    plan = pipe.plan(len(speech), opts)
    n_chunks = len(plan.chunks())
    progress(total=n_chunks * opts.steps, chunks=n_chunks, force=True)

    def on_step(chunk, step):
        progress(phase="generating", step=progress.state["step"] + 1, chunk=chunk.index + 1)

    return pipe.generate(reference, speech, live, opts, progress=on_step,
                         on_phase=lambda p: progress(phase=p, force=True), plan=plan)


def _generate_infinitetalk(spec: JobSpec, speech, live: Path, progress: Progress, frame_filter=None) -> dict:
    from avatarv.pipelines.infinitetalk import InfiniteTalkOptions
    from avatarv.pipelines.infinitetalk_cli import WeightsArgs, run_infinitetalk

    progress(phase="loading the InfiniteTalk weights", force=True)
    extra = dict(spec.infinitetalk or {})
    if extra.get("resolution") is not None:
        extra["resolution"] = tuple(extra["resolution"])
    opts = InfiniteTalkOptions(**{"steps": spec.steps or 40, "seed": spec.seed, "prompt": spec.prompt,
                                  "seconds": spec.seconds, "frame_filter": frame_filter, **extra})

    def on_step(chunk, step, total):
        progress(phase="generating", step=progress.state["step"] + 1, chunk=chunk + 1, total=total)

    return run_infinitetalk(Path(spec.reference), live, [speech], WeightsArgs(weights=Path(spec.weights)), opts,
                            on_step=on_step)


def run_job(spec: JobSpec | dict) -> dict:
    """Generate, watermark, sign; returns ``{"file": signed mp4, "summary": ..., "watermark": hex}``."""
    from avatarv.provenance.c2pa import sign_mp4
    from avatarv.provenance.watermark import chunk_marker, tag_marked

    spec = spec if isinstance(spec, JobSpec) else JobSpec(**spec)
    work = Path(spec.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    progress = Progress(work / "progress.json")
    progress(phase="preparing the speech", force=True)
    speech = _speech(spec)
    live = work / "live.mp4"
    generate = _generate_infinitetalk if spec.weights else _generate_world
    payload = bytes.fromhex(spec.watermark)
    # every chunk is watermarked as it is written: the live stream carries the mark too, no second encode
    summary = generate(spec, speech, live, progress, chunk_marker(payload))
    progress(phase="watermarking", force=True)
    marked = tag_marked(live, work / "marked.mp4", payload, metadata={"avatarv_job": spec.job_id})
    progress(phase="signing", force=True)
    claim = {"title": f"avatarv job {spec.job_id}", "software_agent": "avatarv serve",
             "assertions": [{"label": "org.avatarv.job", "data": {"job": spec.job_id, "watermark": spec.watermark}}]}
    signed = sign_mp4(marked, work / "signed.mp4", spec.key_dir, claim)
    marked.unlink(missing_ok=True)
    progress(phase="done", step=progress.state.get("total", 0), force=True)
    return {"file": str(signed), "summary": summary, "watermark": spec.watermark, "attempt": spec.attempt}
