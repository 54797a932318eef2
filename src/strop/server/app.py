"""The FastAPI application: OpenAI-compatible routes under /v1, backed by the store."""

from __future__ import annotations

import importlib.util
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from strop.server import errors, files, jobs, models
from strop.settings import Settings
from strop.store import Store, store_resolver

log = logging.getLogger("strop.server")
SHUTDOWN_GRACE_SECONDS = 60


def create_app(settings: Settings | None = None, *, run_worker: bool = False,
               store: Store | None = None) -> FastAPI:
    """The service. With `run_worker`, one worker thread runs jobs inside the same process."""
    settings = settings or Settings.load()
    store = store or Store(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = thread = None
        if run_worker:
            from strop.worker import Worker

            worker = Worker(settings, store)
            thread = threading.Thread(target=worker.run_forever, name="strop-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if worker is not None:
                # A running job checkpoints within one optimizer step and is re-queued; one
                # killed before that is recovered from its last checkpoint on the next start.
                worker.stop()
                thread.join(timeout=SHUTDOWN_GRACE_SECONDS)

    app = FastAPI(title="strop", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible fine-tuning service")
    app.state.settings = settings
    app.state.store = store
    app.state.audit = settings.audit_log
    app.state.auth_cache = {}  # see strop.server.auth.caller
    app.state.resolve_model = store_resolver(store)
    errors.install(app)
    for router in (jobs.router, files.router, models.router):
        app.include_router(router, prefix="/v1")
    _mount_inference(app)
    return app


def _mount_inference(app: FastAPI) -> None:
    """Chat completions live in strop.server.chat (the inference engine's half)."""
    if importlib.util.find_spec("strop.server.chat") is None:
        log.warning("strop.server.chat is not installed; /v1/chat/completions is unavailable")
        return
    from strop.server import chat

    app.include_router(chat.router, prefix="/v1")
