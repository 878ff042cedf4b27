"""``avatarv curate``: run a pipeline (reconcile), show what a run would do (diff), show the state (status).

On a Ray cluster::

    avatarv curate run full --input /shared/raw --out runs/c1 --executor ray --address HEAD:6379 --artifacts s3://bucket/c1

``--out`` holds the engine's task records (SQLite, local to the machine running the command); ``--artifacts``
is where workers write and read artifacts: a shared mount or an fsspec URL every node reaches (default:
``--out``, right for one machine). The input folder must be at the same path on every node.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import typer

from avatarv.errors import InputError

app = typer.Typer(name="curate", help="The data engine: declarative, resumable curation of raw footage.",
                  no_args_is_help=True)

PIPELINE_HELP = "pipeline TOML file, or a preset name (prefilter, filters, full)"


@app.command("run")
def run(
    pipeline: str = typer.Argument(..., help=PIPELINE_HELP),
    input: Path = typer.Option(..., "--input", help="folder of raw videos"),
    out: Path = typer.Option(..., "--out", help="output folder (state.sqlite; the artifacts too unless --artifacts)"),
    executor: str = typer.Option("local", help="local (process pool), ray, or inline"),
    address: str = typer.Option("", help="ray: the cluster to connect to (HOST:PORT or 'auto'); default: "
                                "start a local Ray for this run"),
    artifacts: str = typer.Option("", help="artifact root: a folder or fsspec URL (s3://...) that every worker "
                                  "reaches (default: --out)"),
    workers: int = typer.Option(0, help="worker processes / local Ray CPUs (0: all cores)"),
    task_timeout: float = typer.Option(3600.0, help="seconds before a running task counts as hung and is "
                                       "cancelled and retried (0: never)"),
    heartbeat_timeout: float = typer.Option(120.0, help="seconds without a heartbeat before a task counts as "
                                            "lost and is cancelled and retried (0: never)"),
    capacity_refresh: float = typer.Option(5.0, help="seconds between re-reads of the executor's capacity "
                                           "(Ray: nodes that joined or left)"),
    max_attempts: int = typer.Option(2, help="attempts per task before it is recorded as failed"),
    retry_failed: bool = typer.Option(False, help="forget recorded failures and try them again"),
    progress: bool = typer.Option(True, help="progress bars"),
) -> None:
    """Run every missing task of PIPELINE over the videos in --input (resumes; reruns only what changed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from avatarv.data.curation.engine import Engine
    from avatarv.data.curation.pipeline import load_pipeline
    from avatarv.errors import ConfigError

    if address and executor != "ray":
        raise ConfigError(f"--address is for --executor ray (got --executor {executor})")
    if task_timeout < 0 or heartbeat_timeout < 0 or capacity_refresh <= 0:
        raise ConfigError("--task-timeout and --heartbeat-timeout must be >= 0, --capacity-refresh > 0")
    if address and (not artifacts or "://" not in artifacts or artifacts.startswith("file://")):
        typer.echo(f"note: artifacts under the local path {artifacts or out}: every Ray node must mount it at that "
                   "path (else use --artifacts with a shared URL such as s3://...)", err=True)
    engine = Engine(load_pipeline(pipeline), input, out, max_attempts=max_attempts, artifacts=artifacts or None,
                    task_timeout=task_timeout, heartbeat_timeout=heartbeat_timeout, refresh_s=capacity_refresh)
    if retry_failed:
        engine.store.reset_failed()
    bars = Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not progress)
    ids: dict[str, int] = {}

    def on_event(event, task):
        if event == "plan":
            if task.stage not in ids:
                ids[task.stage] = bars.add_task(task.stage, total=0)
            bars.update(ids[task.stage], total=bars.tasks[ids[task.stage]].total + 1,
                        advance=0 if task.status in ("pending", "running") else 1)
        elif event == "finish" and task.status != "pending":
            bars.update(ids[task.stage], advance=1)

    with bars:
        report = engine.run(executor, workers or None, progress=on_event, address=address or None)
    engine.close()
    for f in report.failures:
        typer.echo(f"failed: {f.stage} {f.item}: {f.error}", err=True)
    for stage, item, why in report.cancelled:
        typer.echo(f"retried: {stage} {item}: {why}", err=True)
    typer.echo(json.dumps(report.to_json()))


@app.command("diff")
def diff(
    pipeline: str = typer.Argument(..., help=PIPELINE_HELP),
    input: Path = typer.Option(..., "--input"),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """What a run would do: per stage, tasks done / to run / failed / blocked; nothing is executed."""
    from avatarv.data.curation.engine import Engine
    from avatarv.data.curation.pipeline import load_pipeline

    engine = Engine(load_pipeline(pipeline), input, out)
    tasks = engine.plan()
    counts: dict[str, Counter] = defaultdict(Counter)
    for t in tasks.values():
        counts[t.stage][t.status] += 1
    for stage in engine.pipeline.stages:
        c = counts[stage.name]
        typer.echo(f"{stage.name:>16}  to run {c['pending']:4d}  done {c['done']:4d}  unavailable "
                   f"{c['unavailable']:3d}  failed {c['failed']:3d}  blocked {c['blocked']:3d}")
    engine.close()


@app.command("status")
def status(out: Path = typer.Option(..., "--out", help="output folder of a run")) -> None:
    """Counts per stage, failures with their errors, unavailable stages with the reason, throughput."""
    from avatarv.data.curation.store import StateStore

    if not (out / "state.sqlite").is_file():
        raise InputError("no state.sqlite here (not a curation output folder)", out)
    store = StateStore(out)
    latest: dict[tuple[str, str], dict] = {}  # the most recent record per (stage, item): older configs are history
    for r in sorted(store.rows(), key=lambda r: r["finished"] or 0):
        latest[(r["stage"], r["item"])] = r
    rows = list(latest.values())
    order = [s["name"] for s in store.kv("pipeline", [])]
    by_stage: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_stage[r["stage"]].append(r)
    for name in order + sorted(set(by_stage) - set(order)):
        rs = by_stage.get(name, [])
        c = Counter(r["status"] for r in rs)
        secs = sum(r["seconds"] or 0 for r in rs if r["status"] == "done")
        frames = sum(r["frames"] or 0 for r in rs if r["status"] == "done")
        rate = f"{frames / secs:7.1f} frames/s" if secs and frames else ""
        typer.echo(f"{name:>16}  done {c['done']:4d}  unavailable {c['unavailable']:3d}  failed {c['failed']:3d}"
                   f"  task-seconds {secs:8.1f}  {rate}")
        for r in rs:
            if r["status"] == "unavailable":
                typer.echo(f"{'':>18}unavailable: {r['reason']}")
                break
        for r in rs:
            if r["status"] == "failed":
                typer.echo(f"{'':>18}failed {r['item']} ({r['attempts']} attempts): {r['error']}")
    last = store.kv("last_run")
    if last:
        typer.echo(f"last run: {last['executed']} tasks in {last['seconds']:.1f} s"
                   + (f", {len(last['cancelled'])} cancelled and retried" if last.get("cancelled") else ""))
    typer.echo(f"artifacts: {store.artifacts_url}")
    store.close()
