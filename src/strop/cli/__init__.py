"""The `strop` command. Thin: every verb parses arguments, calls a library function, prints.

Each group of verbs lives in its own module and registers itself on `app` when imported.
"""

from __future__ import annotations

from strop.cli.app import app
from strop.cli import (chat, config, data, db, evaluate, keys, models, quickstart,  # noqa: F401
                       serve, train)


def main() -> None:
    from strop.settings import keep_files_private

    keep_files_private()
    app()
