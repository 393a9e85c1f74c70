"""`genai-audit --help` lists every command without importing them (issue 23: every command,
--help included, paid ~4 s of start-up, 2.3 s of it importing openai for the demo)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from genai_audit.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_short_help_is_the_commands_own(name):
    module, short = COMMANDS[name]
    command = importlib.import_module(f"genai_audit.cli.{module}").command
    assert command.name == name
    assert command.get_short_help_str(limit=80) == short


def test_every_command_module_is_listed():
    import pkgutil

    import genai_audit.cli as package
    modules = {m.name for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_cmd")}
    assert modules == {module for module, _ in COMMANDS.values()}


def test_help_imports_no_command_and_no_driver():
    code = ("import sys\nfrom genai_audit.cli.main import main\nmain(['--help'])\n"
            "heavy = [m for m in ('clickhouse_connect', 'chdb', 'openai', 'opentelemetry.sdk',"
            " 'cryptography', 'presidio_analyzer', 'genai_audit.cli.demo_cmd') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert "HEAVY []" in out
    for name in COMMANDS:
        assert name in out


def test_a_command_resolves_and_an_unknown_one_does_not():
    ctx = click.Context(cli)
    assert cli.get_command(ctx, "query").name == "query"
    assert cli.get_command(ctx, "nosuch") is None
