"""The HTML report of a benchmark run: the seed's table, per-case distributions, thumbnails.

    write_report(out_dir)   # reads out_dir/cases/*.json + summary*.json, writes out_dir/report/index.html

One self-contained folder (``index.html`` + PNGs) that opens in a browser from disk. Tables follow the seed's
("Method | Sync-C up | Sync-D down | Face Sim up | Q-Align up"), with our quality backend named in the header
(the classical index is not Q-Align), behaviour similarity as world-only extra columns (from the pixels; in
motion-stream space, ``avatarv.eval.motion_stream``), one row for the system and one per scene condition.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from avatarv.eval.protocol import CaseResult

COLUMNS = [  # (metric, header, higher is better, format)
    ("sync_c", "Sync-C ↑", True, "{:.2f}"),
    ("sync_d", "Sync-D ↓", False, "{:.2f}"),
    ("face_sim", "Face Sim ↑", True, "{:.3f}"),
    ("quality", "Quality ↑", True, "{:.2f}"),
    ("behaviour", "Behaviour ↑", True, "{:.3f}"),
    ("motion_behaviour", "Behaviour (motion stream) ↑", True, "{:.3f}"),
]
SCENES = ("same", "cross", "generated")
THUMB = 96


def _fmt(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _mean(cases: list[CaseResult], metric: str) -> float:
    v = np.array([c.metrics.get(metric, float("nan")) for c in cases], np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _table(rows: list[tuple[str, list[CaseResult]]], columns) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _, _ in columns)
    body = []
    for label, cases in rows:
        cells = "".join(f"<td>{_fmt(_mean(cases, m), f)}</td>" for m, _, _, f in columns)
        body.append(f"<tr><td class='l'>{html.escape(label)}</td><td>{len(cases)}</td>{cells}</tr>")
    return f"<table><tr><th>Method</th><th>#Cases</th>{head}</tr>{''.join(body)}</table>"


def _plot(cases: list[CaseResult], columns, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [c for c in columns if any(math.isfinite(x.metrics.get(c[0], float("nan"))) for x in cases)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 3.0), squeeze=False)
    colors = {"same": "#1f77b4", "cross": "#ff7f0e", "generated": "#2ca02c"}
    rng = np.random.default_rng(0)
    for ax, (metric, header, _, _) in zip(axes[0], present, strict=True):
        for i, scene in enumerate(SCENES):
            vals = np.array([c.metrics.get(metric, np.nan) for c in cases if c.meta.get("scene") == scene], float)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                ax.scatter(i + rng.uniform(-0.15, 0.15, vals.size), vals, s=12, alpha=0.7, color=colors[scene])
                ax.hlines(vals.mean(), i - 0.3, i + 0.3, color="k", lw=1.5)
        ax.set_xticks(range(len(SCENES)), SCENES)
        ax.set_title(header, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("per-case values by scene condition (bar: mean)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _thumb(video_or_image: str | Path | None, path: Path, middle: bool = False) -> str | None:
    """A THUMB-px JPEG of an image, or of a video's first (or middle) frame; its file name, or None."""
    from PIL import Image

    if not video_or_image or not Path(video_or_image).is_file():
        return None
    src = Path(video_or_image)
    try:
        if src.suffix.lower() in (".png", ".jpg", ".jpeg"):
            im = Image.open(src).convert("RGB")
        else:
            from avatarv.media import read_video

            v = read_video(src, fps=25.0, max_frames=60 if middle else 1)
            im = Image.fromarray(v.frames[len(v.frames) // 2 if middle else 0])
    except Exception:  # a broken or faceless output still gets its row; the thumbnail is left empty
        return None
    im.thumbnail((THUMB, THUMB))
    im.save(path, quality=85)
    return path.name


def write_report(out_dir: str | Path, title: str | None = None) -> Path:
    """``out_dir/report/index.html`` from a finished (or partial) run in ``out_dir``."""
    out_dir = Path(out_dir)
    rep = out_dir / "report"
    (rep / "thumbs").mkdir(parents=True, exist_ok=True)
    cases = [CaseResult.read(p) for p in sorted((out_dir / "cases").glob("*.json"))]
    summary = json.loads((out_dir / "summary.json").read_text()) if (out_dir / "summary.json").is_file() else {}
    system = summary.get("system", cases[0].meta.get("system", "?") if cases else "?")
    bench = summary.get("benchmark", "")
    backends = {k: sorted({str(c.meta.get(k)) for c in cases if c.meta.get(k)}) for k in
                ("face_backend", "quality_backend", "sync_weights")}
    columns = [(m, h.replace("Quality", "Quality (" + "/".join(backends["quality_backend"]) + ")")
                if m == "quality" and backends["quality_backend"] else h, hi, f) for m, h, hi, f in COLUMNS]
    columns = [c for c in columns if any(c[0] in x.metrics for x in cases)]
    rows = [(system, cases)] + [(f"{system} · {s}-scene", [c for c in cases if c.meta.get("scene") == s])
                                for s in SCENES if any(c.meta.get("scene") == s for c in cases)]
    plot = _plot(cases, columns, rep / "distributions.png")
    case_rows = []
    for c in cases:
        ref = _thumb(c.meta.get("reference"), rep / "thumbs" / f"{c.case_id}_ref.jpg")
        scene = _thumb(c.meta.get("scene_image"), rep / "thumbs" / f"{c.case_id}_scene.jpg")
        outv = _thumb(c.meta.get("video"), rep / "thumbs" / f"{c.case_id}_out.jpg", middle=True)
        imgs = "".join(f"<td>{f'<img src=thumbs/{n}>' if n else '–'}</td>" for n in (ref, scene, outv))
        vals = "".join(f"<td>{_fmt(c.metrics.get(m, float('nan')), f)}</td>" for m, _, _, f in columns)
        err = "; ".join(str(e) for e in c.meta.get("errors", []) or [])
        case_rows.append(f"<tr><td class='l'>{html.escape(c.case_id)}</td><td>{html.escape(str(c.meta.get('scene')))}"
                         f"</td>{imgs}{vals}<td class='e'>{html.escape(err)}</td></tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _, _ in columns)
    title = title or f"{system} on {bench}"
    notes = "".join(f"<li>{k.replace('_', ' ')}: {html.escape(', '.join(v))}</li>" for k, v in backends.items() if v)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:8px 0 20px}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;font-size:13px}} th{{background:#f3f3f3}}
td.l{{text-align:left}} td.e{{text-align:left;color:#a00;max-width:260px;font-size:11px}} img{{display:block}}
img.plot{{max-width:100%;height:auto}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(cases)} cases. Per-frame metrics at 2 fps, 10 % trimmed mean per case; the table is the mean over cases
(seed, "Evaluation Setup"). Sync-C/Sync-D: SyncNet protocol of syncnet_python.</p>
<ul>{notes}</ul>
<h2>Objective metrics</h2>{_table(rows, columns)}
<h2>Per-case distributions</h2>{'<img class="plot" src="distributions.png">' if plot else '<p>no metric values</p>'}
<h2>Cases</h2><table><tr><th>case</th><th>scene</th><th>reference</th><th>scene image</th><th>output</th>{head}
<th>errors</th></tr>{''.join(case_rows)}</table>
</body></html>"""
    path = rep / "index.html"
    path.write_text(page)
    return path
