"""/health, /ready and /metrics: answered without a key, and telling the truth."""

from __future__ import annotations

import httpx

from server_harness import serving
from strop.server import create_app
from strop.settings import Settings
from strop.store import Store, access
from strop.worker import Worker


def test_health_ready_and_metrics(strop_home, database_url):
    settings = Settings.load(home=strop_home, database={"url": database_url})
    store = Store(settings.database_url)
    with store.session() as session:
        access.create_key(session, "acme")  # every other route now needs a key
    with serving(create_app(settings, store=store)) as url:
        root = url.removesuffix("/v1")
        assert httpx.get(f"{root}/health").json() == {"status": "ok"}
        not_ready = httpx.get(f"{root}/ready")
        assert not_ready.status_code == 503  # no worker has been seen yet
        checks = not_ready.json()["checks"]
        assert checks["database"]["ok"] and checks["migrations"]["ok"]
        assert not checks["worker"]["ok"]
        Worker(settings, store).seen()
        assert httpx.get(f"{root}/ready").status_code == 200
        assert httpx.get(f"{url}/files").status_code == 401  # timed, by its route
        metrics = httpx.get(f"{root}/metrics").text
    assert 'strop_jobs{status="queued"} 0.0' in metrics
    assert "strop_queue_depth 0.0" in metrics and "strop_adapters_loaded 0.0" in metrics
    assert ('strop_request_duration_seconds_count{method="GET",route="/files",status="401"} '
            '1.0') in metrics
    assert "strop_trained_tokens_total 0.0" in metrics
