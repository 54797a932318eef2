"""Shared fixtures: an isolated STROP_HOME per test and one tiny model per session."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def strop_home(tmp_path, monkeypatch):
    home = tmp_path / "strop-home"
    monkeypatch.setenv("STROP_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from strop.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from strop.models import load

    return load(str(tiny_model_dir))


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory):
    """A STROP_HOME kept for the whole session, so the embedded model converts only once."""
    return tmp_path_factory.mktemp("shared-home")


@pytest.fixture(scope="session")
def embedded_model_folder(shared_home):
    """The embedded model's converted cache (converted once per session, ~60 s)."""
    from strop.models.embedded import EMBEDDED_MODELS, ensure_converted

    previous = os.environ.get("STROP_HOME")
    os.environ["STROP_HOME"] = str(shared_home)
    try:
        return ensure_converted(EMBEDDED_MODELS["smollm2-135m-instruct"])
    finally:
        if previous is None:
            del os.environ["STROP_HOME"]
        else:
            os.environ["STROP_HOME"] = previous


@contextmanager
def _torch_threads(count: int):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def one_thread():
    """Tiny matrices on a shared 2-core machine: two OpenMP threads spend most of a small op in
    barriers, so one thread is several times faster."""
    with _torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_per_module():
    """`one_thread` for a whole module, its module-scoped fixtures included (use it with
    `pytestmark = pytest.mark.usefixtures("one_thread_per_module")`)."""
    with _torch_threads(1):
        yield


@pytest.fixture
def audit_log(strop_home):
    """The audit log of the test's STROP_HOME, as the server and CLI open it."""
    from strop.settings import Settings

    return Settings.load(home=strop_home).audit_log


POSTGRES_ADMIN_URL = os.environ.get("STROP_TEST_POSTGRES_URL")
NO_POSTGRES = ("no PostgreSQL: set STROP_TEST_POSTGRES_URL to a role that may create databases "
               "(bash .ci/run starts one)")


@contextmanager
def postgres_database():
    """A new, empty PostgreSQL database for one test; its URL; dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"strop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, strop_home):
    """Each test that takes this runs on SQLite in its STROP_HOME and on a database of its own
    in the PostgreSQL that `bash .ci/run` starts (skipped, saying so, where there is none)."""
    if request.param == "sqlite":
        strop_home.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{strop_home / 'strop.db'}"
        return
    if not POSTGRES_ADMIN_URL:
        pytest.skip(NO_POSTGRES)
    with postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url():
    if not POSTGRES_ADMIN_URL:
        pytest.skip(NO_POSTGRES)
    with postgres_database() as url:
        yield url
