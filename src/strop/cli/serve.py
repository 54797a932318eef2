"""`strop serve`: the API plus worker processes (`strop worker` runs one alone)."""

from __future__ import annotations

import logging

import typer

from strop.cli.app import app, console, errors, load_settings, open_store
from strop.settings import redacted_url


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="address to bind (default: setting host, 127.0.0.1)"),
    port: int = typer.Option(None, help="port to bind (default: setting port, 8000)"),
    access_log: bool = typer.Option(True, help="log every request (a proxy in front may log "
                                               "them already; off saves ~0.05 ms a request)"),
    workers: int = typer.Option(1, min=0, help="worker processes to run beside the API (0: "
                                                "none; run `strop worker` elsewhere)"),
) -> None:
    """Run the OpenAI-compatible API and worker processes that run fine-tuning jobs."""
    import uvicorn

    from strop.server import create_app
    from strop.server.auth import is_loopback
    from strop.store import access

    settings = load_settings(server={"host": host, "port": port})
    store = open_store(settings)
    with store.read() as session:
        ever_created, live = access.keys_ever_created(session), access.keys_configured(session)
    if not ever_created and not is_loopback(settings.server.host):
        errors.print(f"[yellow]No API key was ever created, so strop binds to 127.0.0.1 only "
                     f"(not {settings.server.host}). Create one with `strop keys create --org "
                     "NAME` to serve other machines.[/]", highlight=False)
        settings = load_settings(server={"host": "127.0.0.1", "port": port})
    elif not ever_created:
        errors.print("[yellow]No API key was ever created: localhost only, no authentication. "
                     "Create one with `strop keys create --org NAME`.[/]", highlight=False)
    elif not live:
        errors.print("[yellow]Every API key is revoked: every request is refused (401) until "
                     "`strop keys create --org NAME` makes a new one.[/]", highlight=False)
    bind = settings.server.host
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console.print(f"strop API on http://{bind}:{settings.server.port}/v1 "
                  f"(database {redacted_url(settings.database_url)}, home {settings.home})")
    uvicorn.run(create_app(settings, workers=workers, store=store), host=bind,
                port=settings.server.port, log_level="info", access_log=access_log)
