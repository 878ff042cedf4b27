"""``avatarv world``: make clips with labels, raw footage with defects, a contact sheet, the examples."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from avatarv.errors import ConfigError, InputError

app = typer.Typer(name="world", help="The synthetic talking-head world (clips, raw footage, contact sheet).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", out)
    return out


@app.command("make")
def make(
    identities: int = typer.Option(4, help="number of identities"),
    scenes: int = typer.Option(4, help="number of scenes"),
    clips: int = typer.Option(8, help="number of clips (identity k mod N, scenes rotate)"),
    seconds: float = typer.Option(4.0, help="seconds per clip"),
    size: int = typer.Option(128, help="frame size in px (even, 64..512)"),
    seed: int = typer.Option(0, help="world seed"),
    desync: float = typer.Option(0.0, help="fraction of clips with an injected audio offset"),
    out: Path = typer.Option(Path("out/world"), help="output directory"),
) -> None:
    """Clips (mp4 with sound) + per-clip labels (npz, json) + manifest.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from avatarv.world.clip import check_size
    from avatarv.world.manifest import make_dataset

    check_size(size)
    _out_dir(out)
    with Progress(TextColumn("world make"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("clips", total=clips)
        path = make_dataset(out, identities, scenes, clips, seconds, size, seed, desync,
                            progress=lambda k: bar.advance(task, k))
    typer.echo(f"{clips} clips, manifest: {path}")


@app.command("raw")
def raw(
    videos: int = typer.Option(1, help="number of raw videos"),
    seconds: float = typer.Option(90.0, help="length of each video"),
    size: int = typer.Option(256, help="frame size in px (even, 64..512)"),
    identities: int = typer.Option(8, help="identities to draw people from"),
    scenes: int = typer.Option(8, help="scenes to draw places from"),
    seed: int = typer.Option(0, help="world seed"),
    out: Path = typer.Option(Path("out/raw"), help="output directory"),
) -> None:
    """Long videos with labelled defects (cuts, fades, static, choppy, no person, second speaker, text,
    blur, shake, darkness, desync) and near-duplicate copies; a JSON of defect intervals beside each."""
    from rich.progress import track

    from avatarv.world.raw import make_raw

    _out_dir(out)
    if seconds < 4:
        raise ConfigError(f"raw video length {seconds} s: expected at least 4 s")
    index = []
    for k in track(range(videos), description="world raw"):
        footage = make_raw(seconds, size, seed, k, identities, scenes)
        path = footage.save(out, f"raw_{k:03d}")
        index.append({"video": path.name, "labels": f"raw_{k:03d}.json", "frames": len(footage.frames),
                      "defects": sorted({i.type for i in footage.intervals})})
    (out / "raw_index.json").write_text(json.dumps(index, indent=1))
    typer.echo(f"{videos} raw video(s) in {out}")


@app.command("sheet")
def sheet(
    identities: int = typer.Option(6, help="rows"),
    scenes: int = typer.Option(6, help="columns"),
    cell: int = typer.Option(128, help="cell size in px"),
    seed: int = typer.Option(0, help="world seed"),
    out: Path = typer.Option(Path("sheet.png"), help="PNG to write"),
) -> None:
    """A PNG contact sheet of identities × scenes."""
    from avatarv.world.sheet import save_sheet

    if out.suffix.lower() != ".png":
        raise InputError("the contact sheet is written as PNG (use a .png name)", out)
    typer.echo(str(save_sheet(out, identities, scenes, cell, seed)))


@app.command("examples")
def examples(
    out: Path = typer.Option(Path("examples"), help="directory for ref.mp4 and speech.wav"),
    seed: int = typer.Option(0, help="world seed"),
) -> None:
    """The demo inputs: ``ref.mp4`` (a 6 s world reference video) and ``speech.wav`` (8 s of other speech
    by the same voice)."""
    from avatarv.world.examples import write_examples

    for p in write_examples(_out_dir(out), seed=seed):
        typer.echo(str(p))


@app.command("analyzer-eval")
def analyzer_eval(
    identities: int = typer.Option(12, "--identities", help="held-out identities (one scene and clip each)"),
    seconds: float = typer.Option(30.0, "--seconds", help="seconds per clip"),
    size: int = typer.Option(128, "--size", help="frame size in px"),
    weights: Path = typer.Option(None, "--weights", help="analyzer weights (default: the shipped ones)"),
) -> None:
    """Do behaviour statistics measured by the analyzer (from pixels) rank identities like their true traits?
    Prints Spearman correlations with the traits (JSON). Same as ``python -m avatarv.world.analyzer.evaluate``."""
    from avatarv.world.analyzer import WorldAnalyzer
    from avatarv.world.analyzer.evaluate import behaviour_agreement

    res = behaviour_agreement(WorldAnalyzer.load(weights), identities, seconds, size)
    res.pop("per_identity")
    print(json.dumps(res, indent=1))
