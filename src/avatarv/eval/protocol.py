"""The evaluation protocol of the seed ("Evaluation Setup", "Objective Metrics").

"All per-frame metrics are sampled at 2 fps and aggregated as 10% trimmed means." This module holds that
protocol and nothing else: which frames a per-frame metric sees, how a case's per-frame values become one
number, and how cases are written (one JSON per case) and summarised (one JSON for the benchmark).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

EVAL_RATE_HZ = 2.0  # per-frame metrics see 2 frames per second (seed, "Objective Metrics")
TRIM_FRACTION = 0.1  # 10 % trimmed mean: scipy cuts 10 % from each end


def sample_frame_indices(n_frames: int, fps: float, rate: float = EVAL_RATE_HZ) -> np.ndarray:
    """Indices of the frames seen by a per-frame metric: one frame every ``1 / rate`` seconds.

    Sample k is taken at time ``t_k = k / rate`` and is the frame shown at that time, i.e. the last frame
    whose start time ``i / fps`` is ``<= t_k`` (``floor(t_k * fps)``). Sampling starts at frame 0 and stops
    at the end of the video. A video slower than ``rate`` gives each frame once (never repeats frames).
    """
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if fps <= 0 or rate <= 0:
        raise ValueError(f"fps and rate must be positive (fps={fps}, rate={rate})")
    duration = n_frames / fps
    n_samples = math.ceil(duration * rate - 1e-9)
    # a small epsilon keeps k*fps/rate exact when it is an integer up to rounding (e.g. 29.97 fps)
    idx = np.floor(np.arange(n_samples) * (fps / rate) + 1e-6).astype(np.int64)
    idx = idx[idx < n_frames]
    return np.unique(idx)


def trimmed_mean(values: Iterable[float], proportion: float = TRIM_FRACTION) -> float:
    """10 % trimmed mean (``scipy.stats.trim_mean``) of the finite values; NaN when there are none.

    Frames where a metric is undefined (no face found, say) carry NaN and are left out before trimming; the
    number left out is reported by the caller beside the score, never hidden.
    """
    x = np.asarray(list(values), dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(stats.trim_mean(x, proportion))


@dataclass
class CaseResult:
    """One benchmark case: its per-frame values (at 2 fps) and the aggregated metrics.

    ``metrics`` holds the numbers that go in the table (``sync_c``, ``sync_d``, ``face_sim``, ``quality``...);
    ``per_frame`` the values they came from; ``meta`` anything that helps a reader (files, backends, frame
    indices, frames without a face).
    """

    case_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    def add_per_frame(self, name: str, values: Sequence[float], proportion: float = TRIM_FRACTION) -> float:
        """Store per-frame values and their trimmed mean under ``name``; returns the aggregate."""
        vals = [float(v) for v in values]
        self.per_frame[name] = vals
        agg = trimmed_mean(vals, proportion)
        self.metrics[name] = agg
        self.meta.setdefault("undefined_frames", {})[name] = int(sum(1 for v in vals if not math.isfinite(v)))  # type: ignore[index]
        return agg

    def to_json(self) -> dict:
        return _json_safe(asdict(self))

    def write(self, directory: str | Path) -> Path:
        """Writes ``<directory>/<case_id>.json`` atomically (temp file then rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.case_id}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> CaseResult:
        data = json.loads(Path(path).read_text())
        metrics = {k: (float("nan") if v is None else float(v)) for k, v in data.get("metrics", {}).items()}
        per_frame = {
            k: [float("nan") if v is None else float(v) for v in vals] for k, vals in data.get("per_frame", {}).items()
        }
        return cls(case_id=data["case_id"], metrics=metrics, per_frame=per_frame, meta=data.get("meta", {}))


def summarize(cases: Sequence[CaseResult]) -> dict[str, dict[str, float]]:
    """Benchmark summary: for each metric, the mean over the cases where it is defined (the table's row),
    with median, standard deviation and the number of cases (defined / total)."""
    names = sorted({name for case in cases for name in case.metrics})
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        vals = np.array([c.metrics.get(name, float("nan")) for c in cases], dtype=np.float64)
        ok = vals[np.isfinite(vals)]
        summary[name] = {
            "mean": float(ok.mean()) if ok.size else float("nan"),
            "median": float(np.median(ok)) if ok.size else float("nan"),
            "std": float(ok.std(ddof=1)) if ok.size > 1 else float("nan"),
            "n": int(ok.size),
            "n_cases": len(cases),
        }
    return summary


def write_summary(cases: Sequence[CaseResult], path: str | Path, extra: dict | None = None) -> dict:
    """Writes the summary JSON (``{"summary": ..., "cases": [ids], **extra}``) and returns it."""
    data = {"summary": summarize(cases), "cases": [c.case_id for c in cases], **(extra or {})}
    data = _json_safe(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return data


def _json_safe(obj):
    """NaN/inf become null (JSON has no NaN); numpy scalars and arrays become Python values."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj
