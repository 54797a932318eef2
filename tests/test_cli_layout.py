"""Each top-level `strop` command lives in the CLI module named for it, so a reader looking for
`strop audit` opens cli/audit.py and nothing else; and the help keeps listing every command."""

from __future__ import annotations

import importlib

from typer.main import get_command_name
from typer.testing import CliRunner

from strop.cli import app

# `strop eval` is in cli/evaluate.py: a module named eval would shadow the builtin wherever
# it is imported by name.
MODULE_FOR = {"eval": "evaluate"}

COMMANDS = {"audit", "chat", "config", "data", "db", "estimate", "eval", "keys", "models",
            "quickstart", "report", "serve", "train", "worker"}


def _module(command: str) -> str:
    return f"strop.cli.{MODULE_FOR.get(command, command)}"


def test_each_command_is_defined_in_the_module_named_for_it():
    misplaced = {}
    for info in app.registered_commands:
        name = info.name or get_command_name(info.callback.__name__)
        if info.callback.__module__ != _module(name):
            misplaced[name] = info.callback.__module__
    assert misplaced == {}


def test_each_group_and_its_verbs_are_defined_in_the_module_named_for_it():
    misplaced = {}
    for group in app.registered_groups:
        module = importlib.import_module(_module(group.name))
        owned = [value for value in vars(module).values() if value is group.typer_instance]
        if not owned:
            misplaced[group.name] = "group not defined there"
        for info in group.typer_instance.registered_commands:
            if info.callback.__module__ != module.__name__:
                misplaced[f"{group.name} {info.name}"] = info.callback.__module__
    assert misplaced == {}


def test_help_lists_every_command():
    names = {info.name or get_command_name(info.callback.__name__)
             for info in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names == COMMANDS
    shown = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert shown.exit_code == 0
    listed = {line.strip("│ ").split(" ")[0] for line in shown.output.splitlines()}
    assert COMMANDS <= listed
