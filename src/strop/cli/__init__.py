"""The `strop` command. Thin: every verb parses arguments, calls a library function, prints.

Each top-level command or group lives in the module named for it (`strop eval` in evaluate.py,
as `eval` is a builtin) and registers itself on `app` when imported; tests/test_cli_layout.py
holds them there.
"""

from __future__ import annotations

from strop.cli.app import app
from strop.cli import (audit, chat, config, data, db, estimate, evaluate, keys,  # noqa: F401
                       models, quickstart, report, serve, train, worker)


def main() -> None:
    from strop.settings import keep_files_private

    keep_files_private()
    app()
