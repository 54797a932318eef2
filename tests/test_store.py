"""The store on its own: atomic claims under contention, paging, keys, the served-model
resolver's isolation, and settings from environment and config file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from strop.serving.resolver import ModelNotFoundError
from strop.settings import Settings, SettingsError
from strop.store import CursorNotFound, Store, access, resolve_served_model
from strop.store import jobs as job_queries
from strop.store.tables import ApiKey, Job, StoredFile, TunedModel


@pytest.fixture
def store(strop_home, database_url):
    return Store(Settings.load(home=strop_home, database={"url": database_url}).database_url)


def _job(session, organization_id: str, **overrides) -> job_queries.JobRow:
    values = dict(organization_id=organization_id, model="smollm2-135m-instruct",
                  base_model="smollm2-135m-instruct", training_file="file-x",
                  validation_file=None, method={"type": "supervised"}, seed=1, suffix=None,
                  metadata=None)
    values.update(overrides)
    return job_queries.create_job(session, **values)


def test_sqlite_database_is_in_wal_mode(strop_home):
    store = Store(Settings.load(home=strop_home).database_url)
    assert store.url == f"sqlite:///{strop_home / 'strop.db'}"
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_concurrent_workers_claim_each_job_exactly_once(store):
    with store.session() as session:
        organization = access.local_organization(session)
        job_ids = {_job(session, organization.id).id for _ in range(20)}
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(worker: str) -> None:
        while True:
            with store.session() as session:
                job = job_queries.claim_next(session, worker)
                if job is None:
                    return
                with lock:
                    claimed.setdefault(job.id, []).append(worker)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(claimed) == job_ids
    assert all(len(workers) == 1 for workers in claimed.values())


def test_paging_rejects_an_unknown_cursor(store):
    with store.session() as session:
        organization = access.local_organization(session)
        _job(session, organization.id)
        with pytest.raises(CursorNotFound):
            job_queries.list_jobs(session, organization.id, after="ftjob-unknown", limit=5)


def test_keys_are_stored_hashed_and_revocable(store):
    with store.session() as session:
        assert not access.keys_configured(session)
        key, secret = access.create_key(session, "acme")
    with store.session() as session:
        stored = session.scalar(select(ApiKey))
        assert secret not in (stored.key_hash, stored.prefix) and len(stored.prefix) < len(secret)
        assert access.keys_configured(session)
        found_key, organization = access.authenticate_key(session, secret)
        assert found_key.id == key.id and organization.name == "acme"
        access.revoke_key(session, key.id)
    with store.session() as session:
        assert access.authenticate_key(session, secret) is None
        assert not access.keys_configured(session)
        with pytest.raises(access.AccessError):
            access.revoke_key(session, "key-nope")
        with pytest.raises(access.AccessError):
            access.create_key(session, "Not A Slug")


def test_resolver_honours_organisations_job_status_and_deletion(store, tmp_path):
    with store.session() as session:
        acme = access.organization(session, "acme", create=True)
        globex = access.organization(session, "globex", create=True)
        job = _job(session, acme.id)
        name = job_queries.fine_tuned_name(job, "acme")
        session.add(TunedModel(name=name, organization_id=acme.id, job_id=job.id,
                               base_model="smollm2-135m-instruct", kind="final", step=3,
                               path=str(tmp_path / "adapter"), created_at=0))
    with store.session() as session:
        with pytest.raises(ModelNotFoundError):  # the job has not succeeded yet
            resolve_served_model(session, name, acme.id)
        session.scalar(select(Job).where(Job.id == job.id)).status = "succeeded"
    with store.session() as session:
        served = resolve_served_model(session, name, acme.id)
        assert served.base == "smollm2-135m-instruct" and served.adapter_dir == tmp_path / "adapter"
        with pytest.raises(ModelNotFoundError):
            resolve_served_model(session, name, globex.id)
        assert resolve_served_model(session, "smollm2-135m-instruct", globex.id).adapter_dir is None
        with pytest.raises(ModelNotFoundError):
            resolve_served_model(session, "no-such-base", acme.id)
        session.scalar(select(TunedModel).where(TunedModel.name == name)).deleted_at = 1
    with store.session() as session:
        with pytest.raises(ModelNotFoundError):
            resolve_served_model(session, name, acme.id)


def test_one_resolver_for_server_and_administrator_and_full_models_serve_as_a_base(
        store, strop_home, database_url, tmp_path):
    from strop.serving.resolver import ServedModel
    from strop.store import store_resolver
    from strop.store.served import local_resolver, locate

    full = tmp_path / "full"  # full fine-tuning leaves a model folder, not an adapter
    full.mkdir()
    (full / "config.json").write_text("{}")
    with store.session() as session:
        acme = access.organization(session, "acme", create=True)
        job = _job(session, acme.id)
        name = job_queries.fine_tuned_name(job, "acme")
        session.add(TunedModel(name=name, organization_id=acme.id, job_id=job.id,
                               base_model="smollm2-135m-instruct", kind="final", step=3,
                               path=str(full), created_at=0))
    with store.session() as session:
        session.scalar(select(Job).where(Job.id == job.id)).status = "succeeded"
    expected = ServedModel(base=str(full), adapter_dir=None, job_id=job.id)
    assert store_resolver(store)(name, acme.id) == expected
    settings = Settings.load(home=strop_home, database={"url": database_url})  # the store's
    assert local_resolver(settings)(name) == expected  # the administrator: any organisation
    with pytest.raises(ModelNotFoundError):  # a request without an organisation: none
        store_resolver(store)(name, None)
    with pytest.raises(ModelNotFoundError, match="no fine-tuned model named 'ft:nope'"):
        local_resolver(settings)("ft:nope")
    paths = locate(name, settings)
    assert (paths.model_dir, paths.job_id) == (full, job.id)


def test_ft_names_carry_base_organisation_suffix_and_id(store):
    with store.session() as session:
        organization = access.local_organization(session)
        job = _job(session, organization.id, base_model="/models/Qwen/Qwen2.5-0.5B", suffix="bot")
        assert job_queries.fine_tuned_name(job, "local") == f"ft:Qwen2.5-0.5B:local:bot:{job.model_id}"
        plain = _job(session, organization.id)
        assert job_queries.checkpoint_name(plain, "local", 7) == (
            f"ft:smollm2-135m-instruct:local::{plain.model_id}:ckpt-step-7")


def test_settings_come_from_environment_over_config_file(strop_home, monkeypatch):
    strop_home.mkdir(parents=True, exist_ok=True)
    (strop_home / "config.toml").write_text(
        '[server]\nport = 9000\nmax_upload_bytes = 1000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("STROP_SERVER_PORT", "9100")
    settings = Settings.load()
    assert settings.home == Path(strop_home)
    server = settings.server
    assert (server.port, server.max_upload_bytes, server.host) == (9100, 1000, "0.0.0.0")
    assert Settings.load(server={"port": 9200}).server.port == 9200
    monkeypatch.setenv("STROP_SERVER_MAX_UPLOAD_BYTES", "lots")
    with pytest.raises(SettingsError, match="server.max_upload_bytes"):
        Settings.load()
    monkeypatch.delenv("STROP_SERVER_MAX_UPLOAD_BYTES")
    (strop_home / "config.toml").write_text("port = = 3")
    with pytest.raises(SettingsError, match="config.toml"):
        Settings.load()


def test_database_url_setting_selects_the_database(strop_home, monkeypatch, tmp_path):
    monkeypatch.setenv("STROP_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    settings = Settings.load()
    Store(settings.database_url)
    assert (tmp_path / "elsewhere.db").is_file()


def test_deleting_and_uploading_the_same_bytes_at_once_never_loses_them(store, tmp_path):
    """Two organisations upload and delete the same bytes over and over, at once: right after
    each upload is committed its bytes are on disk (a delete that counted references before
    the other upload's row existed would have removed them)."""
    import io
    import threading

    from strop.store.files import add_file, blob_path, delete_file, get_file, receive_blob

    files_dir = tmp_path / "files"
    content = b'{"text": "the same bytes"}\n'
    with store.session() as session:
        first = access.organization(session, "first", create=True).id
        second = access.organization(session, "second", create=True).id

    def upload(organization_id):
        blob = receive_blob(files_dir, io.BytesIO(content), limit=1 << 20)
        with store.session() as session:
            return add_file(session, files_dir, blob, organization_id=organization_id,
                            filename="a.jsonl", purpose="fine-tune")

    problems = []
    done = threading.Event()

    def churn():
        try:
            while not done.is_set():
                row = upload(first)
                with store.session() as session:
                    delete_file(session, files_dir, get_file(session, row.id, first))
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            problems.append(repr(exc))

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(300):
            row = upload(second)
            if not blob_path(files_dir, row.sha256).is_file():
                problems.append(f"{row.id}: committed without its bytes")
            with store.session() as session:
                delete_file(session, files_dir, get_file(session, row.id, second))
    finally:
        done.set()
        thread.join()
    assert problems == []
    with store.session() as session:
        assert session.query(StoredFile).count() == 0
    assert not blob_path(files_dir, row.sha256).exists()  # the last reference took the bytes
