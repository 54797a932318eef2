"""`strop worker`: one worker process alone, claiming jobs from the shared database (`strop serve`
starts its own beside the API)."""

from __future__ import annotations

import logging
import signal

from strop.cli.app import app, console, load_settings, open_store
from strop.settings import redacted_url


@app.command("worker")
def worker() -> None:
    """Run a worker alone: claim queued jobs from the database and train them."""
    from strop.worker import Worker

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runner = Worker(settings, open_store(settings))
    console.print(f"strop worker {runner.worker_id} on {redacted_url(settings.database_url)}")
    # SIGTERM (from `strop serve` stopping, or a process manager): checkpoint, re-queue, exit.
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()
