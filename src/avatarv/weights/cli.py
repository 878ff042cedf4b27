"""``avatarv weights check DIR``: what a weights folder holds, part by part, from file headers alone."""

from __future__ import annotations

from pathlib import Path

import typer

from avatarv.errors import CheckpointError

app = typer.Typer(name="weights", help="Real weights for the InfiniteTalk mode (`generate --weights DIR`).",
                  no_args_is_help=True)


@app.command("check")
def check_cmd(
    weights: Path = typer.Argument(..., help="The weights folder (avatarv's layout or InfiniteTalk's README one)."),
    variant: str = typer.Option("single", "--variant", help="InfiniteTalk layout: single or multi audio file."),
    wan: Path = typer.Option(None, "--wan", help="The Wan2.1-I2V DiT instead of the folder's."),
    audio_adapter: Path = typer.Option(None, "--audio-adapter", help="InfiniteTalk / MultiTalk audio file."),
    wav2vec: Path = typer.Option(None, "--wav2vec", help="chinese-wav2vec2-base folder."),
    t5: Path = typer.Option(None, "--t5", help="UMT5-XXL encoder (diffusers folder or Wan's .pth)."),
    clip: Path = typer.Option(None, "--clip", help="CLIP ViT-H/14 vision (diffusers image_encoder/ or Wan's .pth)."),
    vae: Path = typer.Option(None, "--vae", help="Wan2.1 VAE (diffusers vae/ or Wan2.1_VAE.pth)."),
) -> None:
    """List each part found (files, parameters per dtype), check that the DiT and audio adapter fit together key
    by key, and name what is missing. Reads headers only (no tensor is loaded); exits non-zero if a part is missing
    or does not fit."""
    from avatarv.weights.layout import check_weights
    from avatarv.weights.layout import human_count as _size

    overrides = {"wan": wan, "audio": audio_adapter, "wav2vec": wav2vec, "t5": t5, "clip": clip, "vae": vae}
    report = check_weights(weights, overrides, audio_variant=variant)
    typer.echo(f"{weights}: {report.layout} layout")
    rows = [("part", "status", "params", "dtypes", "path / detail")]
    for p in report.parts:
        dtypes = " ".join(f"{d}:{_size(n)}" for d, n in sorted(p.dtypes.items(), key=lambda x: -x[1]))
        status = "ok" if p.ok else ("MISSING" if p.path is None else "BAD")
        where = str(p.path) if p.path is not None else p.expected
        rows.append((p.part, status, _size(p.params) if p.params else "-", dtypes or "-", where))
        if p.detail:
            rows.append(("", "", "", "", p.detail))
        if p.problem and p.path is not None:
            rows.append(("", "", "", "", p.problem))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    if not report.ok:
        raise CheckpointError(f"{len(report.problems())} part(s) missing or unusable\n  "
                              + "\n  ".join(report.problems()), weights)
