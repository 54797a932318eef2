"""The FastAPI application: OpenAI-compatible routes under /v1, backed by the store."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from strop.server import api_docs, chat, errors, files, jobs, models, operations
from strop.server.auth import open_mode
from strop.server.limits import BodyLimit
from strop.settings import Settings, keep_files_private
from strop.store import Store, store_resolver
from strop.worker.pool import WorkerPool

log = logging.getLogger("strop.server")


def create_app(settings: Settings | None = None, *, workers: int = 0,
               store: Store | None = None) -> FastAPI:
    """The service; with `workers`, that many worker processes run jobs beside it (started
    and stopped with the app, restarted if one dies)."""
    keep_files_private()
    settings = settings or Settings.load()
    store = store or Store(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=files.finish_interrupted_uploads, args=(app.state,),
                         name="strop-upload-recovery", daemon=True).start()
        pool = WorkerPool(settings, workers).start() if workers else None
        try:
            yield
        finally:
            if pool is not None:
                # A running job checkpoints within one optimizer step and is re-queued; one
                # killed before that is recovered from its last checkpoint on the next start.
                await run_in_threadpool(pool.stop)

    # The API description is served by api_docs, behind the same authentication as the API.
    app = FastAPI(title="strop", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible fine-tuning service",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.audit = settings.audit_log
    app.state.auth_cache = {}  # see strop.server.auth.caller
    app.state.open_mode = open_mode(store, settings.server.host)
    app.state.resolve_model = store_resolver(store)
    errors.install(app)
    for router in (jobs.router, files.router, models.router, chat.router):
        app.include_router(router, prefix="/v1")
    api_docs.install(app)
    operations.install(app)
    app.add_middleware(BodyLimit, max_request_bytes=settings.server.max_request_bytes,
                       max_upload_bytes=settings.server.max_upload_bytes)
    return app
