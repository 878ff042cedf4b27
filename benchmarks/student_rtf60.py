"""Real-time factor of a distilled pipeline over 60 s of output, everything included from this process's start
(imports, checkpoint load, reference, sampling, decode, colour anchor, mp4 written; the demo speech repeated),
with the time from the end of preparation to chunk 0's frames reaching the writer.
Ends with one JSON line (CPU named).

    python benchmarks/student_rtf60.py --checkpoint checkpoints/world-small-distilled [--step-cache 0.3] [--inline-write]
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=Path("checkpoints/world-small-distilled"))
    ap.add_argument("--decoder", default="auto")
    ap.add_argument("--tail-encoder", default="auto", help="auto | full | tiny (GenerationOptions.tail_encoder)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--step-cache", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=None, help="override the checkpoint's sampling steps")
    ap.add_argument("--inline-write", action="store_true", help="write each chunk inline (no write-behind worker)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/student-rtf60.mp4"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from avatarv.diffusion import GuidanceScales
    from avatarv.media import read_audio, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.precision import cpu_model
    from avatarv.resources import example

    ref = read_video(example("ref.mp4"))
    speech = read_audio(example("speech.wav"))
    speech = np.tile(speech, int(np.ceil(args.seconds * 16000 / len(speech))))
    pipe = AvatarPipeline.from_checkpoint(args.checkpoint, decoder=args.decoder)
    sampling = json.loads((args.checkpoint / "pipeline.json").read_text()).get("sampling") or {}
    marks: dict[str, float] = {}

    def first_frames(frames):  # the frame filter runs right before the writer appends a chunk's frames
        marks.setdefault("written", time.perf_counter())
        return frames

    def on_phase(name):
        marks["prepared"] = time.perf_counter()

    opts = GenerationOptions(seconds=args.seconds, steps=args.steps or int(sampling.get("steps", 4)),
                             sampler=sampling.get("sampler", "x0"), colour_correction=1.0, step_cache=args.step_cache,
                             write_behind=not args.inline_write, frame_filter=first_frames,
                             tail_encoder=args.tail_encoder,
                             **({"guidance": GuidanceScales.parse(sampling["guidance"])} if sampling.get("guidance")
                                else {}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    s = pipe.generate(ref, speech, args.out, opts, on_phase=on_phase)
    wall = time.perf_counter() - T0
    print(json.dumps({"bench": "student_rtf60", "cpu": cpu_model(), "threads": torch.get_num_threads(),
                      "checkpoint": str(args.checkpoint), "steps": opts.steps, "decoder": s["decoder"],
                      "tail_encoder": s["tail_encoder"], "step_cache": args.step_cache,
                      "write_behind": not args.inline_write,
                      "seconds": s["seconds"], "wall_s": round(wall, 1), "rtf": round(wall / s["seconds"], 3),
                      "phases": s["seconds_by_phase"],
                      "first_chunk_after_prep_s": round(marks.get("written", 0) - marks.get("prepared", T0), 2),
                      "step_cache_skipped": s.get("step_cache_skipped"), "load1": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
