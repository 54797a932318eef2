"""The `strop` command. Thin: every verb parses arguments, calls a library function, prints.

Each group of verbs lives in its own module and registers itself on `app` when imported.
"""

from __future__ import annotations

from strop.cli.app import app
from strop.cli import (audit, chat, config, data, db, estimate, evaluate, keys,  # noqa: F401
                       models, quickstart, report, serve, train, worker)


def main() -> None:
    from strop.settings import keep_files_private

    keep_files_private()
    app()
