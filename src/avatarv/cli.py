"""The ``avatarv`` command line.

Each part registers its commands here by name → ``"module:attribute"``; the attribute is a
``typer.Typer`` (a command group such as ``world`` or ``voice``) or a plain function (a single command
such as ``info``). Modules are imported when the CLI starts so a broken part fails loudly in the tests.
"""

from __future__ import annotations

import importlib
import sys

import typer

from avatarv.errors import AvatarvError

# name -> "module:attribute". Groups are typer.Typer objects, commands are functions.
COMMANDS: dict[str, str] = {
    "info": "avatarv.info:info",
    "world": "avatarv.world.cli:app",
    "generate": "avatarv.pipelines.cli:generate",
    "demo": "avatarv.pipelines.cli:demo",
    "train": "avatarv.training.cli:app",
    "inspect": "avatarv.media.cli:inspect",
    "eval": "avatarv.eval.cli:app",
    "voice": "avatarv.voice.cli:app",
    "curate": "avatarv.data.curation.cli:app",
    "weights": "avatarv.weights.cli:app",
    "watermark": "avatarv.provenance.cli:app",
    "serve": "avatarv.serve.cli:serve",
}


def _load(target: str):
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="avatarv",
        help="Video-reference talking-avatar generation.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root() -> None:
        """Video-reference talking-avatar generation."""

    for name, target in COMMANDS.items():
        obj = _load(target)
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns ``AvatarvError`` into one line on stderr and exit code 2."""
    app = build_app()
    try:
        rc = app(args=argv, standalone_mode=False)
    except AvatarvError as err:
        print(f"avatarv: {err}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as ex:  # raised by commands that exit early on purpose
        return int(ex.exit_code)
    except SystemExit as ex:
        return int(ex.code or 0)
    except typer.Abort:
        print("avatarv: aborted", file=sys.stderr)
        return 130
    except typer.exceptions.TyperException as err:  # usage errors (click, vendored by typer)
        show = getattr(err, "show", None)
        if show is not None:
            show()
        else:
            print(f"avatarv: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    return int(rc or 0)  # standalone_mode=False returns the code of typer.Exit instead of raising it


if __name__ == "__main__":
    sys.exit(main())
