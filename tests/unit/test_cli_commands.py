"""The training / evaluation programs are ``avatarv`` subcommands (typer), and ``python -m <module>`` still runs them."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from avatarv.cli import build_app
from avatarv.cli import main as avatarv_main

COMMANDS = {  # avatarv subcommand → (python -m module, flags its help must list)
    ("train", "analyzer"): ("avatarv.world.analyzer.train",
                            ["--out", "--steps", "--batch", "--pairs", "--per-pair", "--width", "--seed", "--threads",
                             "--dtype"]),
    ("world", "analyzer-eval"): ("avatarv.world.analyzer.evaluate",
                                 ["--identities", "--seconds", "--size", "--weights"]),
    ("eval", "train-syncnet"): ("avatarv.eval.train_syncnet",
                                ["--out", "--weights", "--clips", "--identities", "--scenes", "--test-clips",
                                 "--seconds", "--steps", "--batch-clips", "--run", "--width", "--embed-dim",
                                 "--audio-width", "--lr", "--threads", "--seed", "--checkpoint-every",
                                 "--stop-after"]),
    ("eval", "train-identity"): ("avatarv.eval.train_identity",
                                 ["--out", "--weights", "--identities", "--scenes", "--scenes-per-id",
                                  "--frames-per-scene", "--test-ids", "--steps", "--batch", "--width", "--embed-dim",
                                  "--scale", "--margin", "--lr", "--threads", "--seed", "--checkpoint-every",
                                  "--stop-after"]),
}


def _command(path: tuple[str, ...]):
    cmd = typer.main.get_command(build_app())
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_subcommand_help_lists_its_flags(path):
    result = CliRunner().invoke(build_app(), [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for flag in COMMANDS[path][1]:
        assert flag in result.output, (flag, result.output)
    assert {o for p in _command(path).params for o in p.opts} == set(COMMANDS[path][1])  # no more, no fewer


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_module_main_is_the_same_command(path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    module = importlib.import_module(COMMANDS[path][0])
    with pytest.raises(SystemExit) as ex:
        module.main(["--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m {COMMANDS[path][0]}" in out
    assert all(flag in out for flag in COMMANDS[path][1]), out


def test_python_dash_m_runs_the_command():
    """The Makefile's ``python -m avatarv.eval.train_identity ...`` form (here with --help)."""
    out = subprocess.run([sys.executable, "-m", "avatarv.eval.train_identity", "--help"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "--checkpoint-every" in out.stdout and "--stop-after" in out.stdout


@pytest.mark.parametrize(("path", "config"), [(("eval", "train-syncnet"), "SyncNetTrainConfig"),
                                              (("eval", "train-identity"), "IdentityTrainConfig")])
def test_cli_defaults_are_the_config_defaults(path, config):
    cls = getattr(importlib.import_module(COMMANDS[path][0]), config)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for p in _command(path).params:
        if p.name == "weights":  # None on the command line: the config's default path
            assert p.default is None
            continue
        assert p.default == defaults[p.name], (p.name, p.default, defaults[p.name])


def test_train_analyzer_tiny_run(tmp_path, capsys):
    out = tmp_path / "analyzer.safetensors"
    rc = avatarv_main(["train", "analyzer", "--out", str(out), "--steps", "2", "--batch", "4", "--pairs", "2",
                       "--per-pair", "2", "--width", "4", "--threads", "1", "--dtype", "fp32"])
    assert rc == 0
    assert out.is_file() and not out.with_name(out.stem + ".partial.pt").exists()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["steps"] == 2 and meta["width"] == 4 and meta["batch"] == 4
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):]) == meta["test"]  # the test metrics, as before
