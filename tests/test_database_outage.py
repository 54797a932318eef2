"""The database lost while running: requests get 503 in OpenAI's shape, a training job waits
instead of failing, and everything resumes when the database is back."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url

from server_harness import serving, wait_for
from strop.server import create_app
from strop.settings import EvaluationSettings, Settings
from strop.store import Store
from strop.store.tables import Event, Job
from strop.worker import Worker
from tcp_proxy import CuttableProxy
from test_worker import _queue_job


def _through(proxy: CuttableProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)


def test_requests_get_503_while_the_database_is_away_and_recover(strop_home, postgres_url):
    target = make_url(postgres_url)
    proxy = CuttableProxy(target.host, target.port)
    settings = Settings.load(home=strop_home, database={"url": _through(proxy, postgres_url)})
    try:
        with serving(create_app(settings)) as url:
            assert httpx.get(f"{url}/fine_tuning/jobs", timeout=10).status_code == 200
            proxy.cut()
            response = httpx.get(f"{url}/fine_tuning/jobs", timeout=30)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "database_unavailable"
            proxy.restore()
            assert httpx.get(f"{url}/fine_tuning/jobs", timeout=30).status_code == 200
    finally:
        proxy.close()


def test_a_training_job_waits_for_the_database_and_finishes(strop_home, tmp_path, postgres_url,
                                                           tiny_model_dir):
    target = make_url(postgres_url)
    proxy = CuttableProxy(target.host, target.port)
    settings = Settings.load(home=strop_home, database={"url": _through(proxy, postgres_url)},
                             worker={"poll_seconds": 0.05, "heartbeat_seconds": 0.2})
    settings = replace(settings, evaluation=EvaluationSettings(after_training=False))
    direct = Store(postgres_url)  # the test's own view, not through the proxy
    job_id = _queue_job(settings, direct, tmp_path, tiny_model_dir, epochs=6, batch_size=4)
    worker = Worker(settings, Store(settings.database_url))
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        def training():
            with direct.session() as session:
                return session.scalar(select(Event.id).where(Event.job_id == job_id,
                                                             Event.type == "metrics"))
        wait_for(training, timeout=120, interval=0.05)
        proxy.cut()
        time.sleep(3)
        proxy.restore()

        def finished():
            with direct.session() as session:
                job = session.scalar(select(Job).where(Job.id == job_id))
                return job if job.status in ("succeeded", "failed", "cancelled") else None
        job = wait_for(finished, timeout=300, interval=0.2)
    finally:
        worker.stop()
        thread.join(60)
        proxy.close()
    assert job.status == "succeeded", job.error
    assert job.error is None and job.fine_tuned_model
