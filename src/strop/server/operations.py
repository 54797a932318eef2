"""What an operator's tools ask: `/health` (the process answers), `/ready` (it can do its job)
and `/metrics` (Prometheus). None of them needs a key or reveals any organisation's data."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from strop.store import schema
from strop.store.job_states import STATUSES
from strop.store.tables import Job, WorkerSeen

UNTIMED = {"/metrics", "/health", "/ready"}


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self, app: FastAPI):
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "strop_request_duration_seconds", "Time to answer a request, by route",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.decoded_tokens = Counter("strop_decode_tokens", "Tokens generated for chat "
                                      "completions", registry=self.registry)
        self.decode_seconds = Counter("strop_decode_seconds", "Time spent generating them "
                                      "(tokens / seconds = decode tokens/s)",
                                      registry=self.registry)
        self.registry.register(_StoreCollector(app))

    def decoded(self, tokens: int, seconds: float) -> None:
        self.decoded_tokens.inc(tokens)
        self.decode_seconds.inc(seconds)


class _StoreCollector:
    """Read at scrape time: jobs by status, the queue, tokens trained, adapters in memory."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        with self.app.state.store.read() as session:
            by_status = dict(session.execute(select(Job.status, func.count())
                                             .group_by(Job.status)).all())
            trained = session.scalar(select(func.coalesce(func.sum(Job.trained_tokens), 0)))
        jobs = GaugeMetricFamily("strop_jobs", "Fine-tuning jobs by status", labels=["status"])
        for status in STATUSES:
            jobs.add_metric([status], by_status.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("strop_queue_depth", "Jobs waiting for a worker",
                                value=by_status.get("validating_files", 0)
                                + by_status.get("queued", 0))
        tokens = CounterMetricFamily("strop_trained_tokens", "Tokens trained by every job")
        tokens.add_metric([], trained)
        yield tokens
        engine = getattr(self.app.state, "engine", None)
        loaded = engine.loaded() if engine is not None else {}
        yield GaugeMetricFamily("strop_adapters_loaded", "Adapters in the serving engine",
                                value=sum(len(base["adapters"]) for base in loaded.values()))


class RequestTimer:
    """Pure ASGI middleware (BaseHTTPMiddleware would add a task and a body copy to every
    request): the latency histogram by route template, so ids do not explode the labels."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def watched_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            path = getattr(scope.get("route"), "path", None) or "unmatched"
            if path not in UNTIMED:
                self.metrics.latency.labels(scope["method"], path, str(status)).observe(
                    time.perf_counter() - started)


def install(app: FastAPI) -> None:
    app.state.metrics = metrics = Metrics(app)
    app.add_middleware(RequestTimer, metrics=metrics)

    @app.get("/health", include_in_schema=False)
    async def health():
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request):
        checks = await run_in_threadpool(_readiness, request.app.state)
        ok = all(check["ok"] for check in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _readiness(state) -> dict:
    settings, store = state.settings, state.store
    try:
        current = schema.current_revision(store.engine)
    except Exception as exc:  # unreachable: say so, never a 500
        return {"database": {"ok": False, "detail": str(exc).splitlines()[0]}}
    head = schema.head_revision()
    lease = settings.worker.stale_after_seconds
    with store.read() as session:
        last_seen = session.scalar(select(func.max(WorkerSeen.seen_at)))
    seen_ago = None if last_seen is None else time.time() - last_seen
    return {
        "database": {"ok": True},
        "migrations": {"ok": current == head, "revision": current, "needed": head},
        "worker": {"ok": seen_ago is not None and seen_ago <= lease,
                   "seconds_since_seen": None if seen_ago is None else round(seen_ago, 1),
                   "lease_seconds": lease},
    }
