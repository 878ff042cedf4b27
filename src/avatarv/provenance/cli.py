"""``avatarv watermark detect|embed|manifest``: the watermark and content credentials of a video."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from avatarv.errors import InputError

app = typer.Typer(name="watermark", help="Invisible watermark and C2PA content credentials of a video.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _payload(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        raise InputError(f"--payload must be 16 hex digits (64 bits), got {text!r}")
    return raw


@app.command("detect")
def detect_cmd(
    file: Path = typer.Argument(..., help="A video (mp4, mov, ...)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print confidence and bits corrected."),
) -> None:
    """Print the watermark's payload (16 hex digits) or `none`; exit 0 either way."""
    from avatarv.provenance.watermark import detect_file

    found = detect_file(file)
    typer.echo(found.hex or "none")
    if verbose:
        typer.echo(json.dumps({"confidence": round(found.confidence, 2), "bit_errors": found.bit_errors,
                               "crop": round(found.crop, 4)}), err=True)


@app.command("embed")
def embed_cmd(
    src: Path = typer.Argument(..., help="The video to mark."),
    dst: Path = typer.Argument(..., help="The marked copy (.mp4; may be SRC)."),
    payload: str = typer.Option(None, "--payload", help="16 hex digits (default: a random 64-bit id)."),
) -> None:
    """Watermark SRC into DST (audio copied, `avatarv_watermark=<hex>` in the metadata); prints the payload."""
    import os

    from avatarv.provenance.watermark import embed_file

    raw = _payload(payload) or os.urandom(8)
    embed_file(src, dst, raw)
    typer.echo(raw.hex())


@app.command("manifest")
def manifest_cmd(
    file: Path = typer.Argument(..., help="A video with (or without) C2PA content credentials."),
    sign: Path = typer.Option(None, "--sign", help="Instead: sign FILE in place with the key in this folder "
                              "(made there if absent), stating it is AI-generated."),
) -> None:
    """Print the C2PA manifest of FILE as JSON (`none` if it has none), or sign it with --sign KEYDIR."""
    from avatarv.provenance import c2pa

    if sign is not None:
        if not (sign / c2pa.KEY_FILE).is_file():
            c2pa.generate_key(sign)
        c2pa.sign_mp4(file, file, sign)
    manifest = c2pa.read_manifest(file)
    if manifest is None:
        typer.echo("none")
        return
    actions = [a for x in manifest.get("assertions", []) if str(x.get("label", "")).startswith("c2pa.actions")
               for a in x.get("data", {}).get("actions", [])]
    typer.echo(json.dumps({"title": manifest.get("title"), "ai_generated": manifest["ai_generated"],
                           "validation_state": manifest.get("validation_state"),
                           "signer": manifest.get("signature_info", {}).get("common_name"),
                           "actions": actions}, indent=1))
