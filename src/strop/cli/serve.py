"""`strop serve` (the API plus one worker) and `strop worker` (a worker alone)."""

from __future__ import annotations

import logging

import typer

from strop.cli.app import app, console, errors, load_settings
from strop.settings import redacted_url

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="address to bind (default: setting host, 127.0.0.1)"),
    port: int = typer.Option(None, help="port to bind (default: setting port, 8000)"),
    access_log: bool = typer.Option(True, help="log every request (a proxy in front may log "
                                               "them already; off saves ~0.05 ms a request)"),
) -> None:
    """Run the OpenAI-compatible API and one worker that runs fine-tuning jobs."""
    import uvicorn

    from strop.server import create_app
    from strop.store import Store, access

    settings = load_settings(server={"host": host, "port": port})
    store = Store(settings.database_url)
    with store.session() as session:
        keys_configured = access.keys_configured(session)
    bind = settings.server.host
    if not keys_configured and bind not in LOCAL_HOSTS:
        errors.print(f"[yellow]No API keys are configured, so strop binds to 127.0.0.1 only "
                     f"(not {bind}). Create one with `strop keys create --org NAME` to serve "
                     "other machines.[/]", highlight=False)
        bind = "127.0.0.1"
    elif not keys_configured:
        errors.print("[yellow]No API keys are configured: localhost only, no authentication. "
                     "Create one with `strop keys create --org NAME`.[/]", highlight=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console.print(f"strop API on http://{bind}:{settings.server.port}/v1 "
                  f"(database {redacted_url(settings.database_url)}, home {settings.home})")
    uvicorn.run(create_app(settings, run_worker=True, store=store), host=bind,
                port=settings.server.port, log_level="info", access_log=access_log)


@app.command("worker")
def worker() -> None:
    """Run a worker alone: claim queued jobs from the database and train them."""
    from strop.store import Store
    from strop.worker import Worker

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runner = Worker(settings, Store(settings.database_url))
    console.print(f"strop worker {runner.worker_id} on {redacted_url(settings.database_url)}")
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()
