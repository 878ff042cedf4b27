"""``avatarv serve``: the server (API, OpenAPI docs at /docs, web page at /), one process on a laptop;
``avatarv serve admin create NAME``: a user and its token, printed once."""

from __future__ import annotations

from pathlib import Path

import typer

serve = typer.Typer(help="Serve avatars over HTTP: accounts, consent, moderation, jobs, watermark + C2PA.",
                    no_args_is_help=False, add_completion=False)
admin = typer.Typer(help="Manage users without a running server.", no_args_is_help=True)
serve.add_typer(admin, name="admin")

DATA = typer.Option(Path("avatarv-data"), "--data", help="Data folder: the SQLite store, files, signing key.")


@serve.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    data: Path = DATA,
    workers: int = typer.Option(1, "--workers", min=1, help="Jobs run at the same time (worker processes)."),
    queue_size: int = typer.Option(8, "--queue-size", min=1, help="Jobs queued or running; more get 429."),
    executor: str = typer.Option("local", "--executor", help="local (worker processes) | ray."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (--executor ray; default: a local "
                                "Ray). The data folder must be on a file system every Ray node sees."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Pipeline checkpoint (default: bundled world-small)."),
    preset: str = typer.Option(None, "--preset", help="Untrained RANDOM weights (tests: the video shows noise)."),
    weights: Path = typer.Option(None, "--weights", help="InfiniteTalk mode: a folder of real weights."),
    steps: int = typer.Option(None, "--steps", min=1, help="Default denoising steps per job."),
    blocklist: Path = typer.Option(None, "--blocklist", help="Moderation: a file of refused terms, one a line; "
                                   "'review: term' holds the job for an admin."),
    review_all: bool = typer.Option(False, "--review-all", help="Hold every job for an admin's approval."),
    moderate_speech: bool = typer.Option(False, "--moderate-speech", help="Transcribe uploaded speech (Whisper) "
                                         "and moderate the transcript like typed text."),
    upload_mb: float = typer.Option(200.0, "--upload-mb", help="Default per-upload limit (MB)."),
    init_admin: str = typer.Option(None, "--init-admin", help="Create this admin user if it does not exist and "
                                   "print its token once."),
) -> None:
    """Start the server (``avatarv serve admin ...`` manages users)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from avatarv.serve.app import create_app
    from avatarv.serve.config import Limits, ServerConfig
    from avatarv.serve.moderation import PolicyModerator, whisper_transcriber

    if sum(x is not None for x in (checkpoint, preset, weights)) > 1:
        from avatarv.errors import InputError

        raise InputError("give at most one of --checkpoint, --preset and --weights")
    config = ServerConfig(data=data, workers=workers, queue_size=queue_size, executor=executor, ray_address=address,
                          checkpoint=checkpoint, preset=preset, weights=weights, steps=steps, blocklist=blocklist,
                          review_uploads=review_all, limits=Limits(upload_bytes=int(upload_mb * 1e6)))
    moderator = PolicyModerator.from_file(blocklist, review_all=review_all,
                                          transcriber=whisper_transcriber if moderate_speech else None)
    app = create_app(config, moderator=moderator)
    if init_admin:
        _print_new_user(app.state.server.store, init_admin, "admin", if_missing=True)
    typer.echo(f"avatarv serve: http://{host}:{port}/ (API docs /docs), data in {config.data.resolve()}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _print_new_user(store, name: str, role: str, if_missing: bool = False) -> None:
    from avatarv.serve.auth import create_user
    from avatarv.serve.errors import ApiError

    if if_missing and store.one("SELECT 1 AS x FROM users WHERE name = ?", name):
        typer.echo(f"avatarv serve: user {name!r} exists (its token was shown when it was made)", err=True)
        return
    try:
        row, token = create_user(store, name, role)
    except ApiError as err:
        from avatarv.errors import InputError

        raise InputError(err.detail) from None
    typer.echo(f"avatarv serve: {role} {name!r} ({row['id']}); token, shown once:", err=True)
    typer.echo(token)


@admin.command("create")
def admin_create(name: str = typer.Argument(..., help="User name."), data: Path = DATA,
                 role: str = typer.Option("admin", "--role", help="admin | user.")) -> None:
    """Create a user (an admin by default) in the data folder's store and print its token once."""
    from avatarv.serve.files import DataDir
    from avatarv.serve.store import Store

    store = Store(DataDir(data).db_path)
    try:
        _print_new_user(store, name, role)
    finally:
        store.close()
