"""Authentication that cannot fall open, bodies bounded before they are read, private files,
and an API description behind the same keys as the API."""

from __future__ import annotations

import os
import select
import socket
import stat
import subprocess
import sys
import time

import httpx
import pytest

from server_harness import chat_examples, free_port, serving, wait_for, write_jsonl
from strop.server import create_app
from strop.server.auth import AUTH_CACHE_SECONDS
from strop.settings import Settings
from strop.store import Store, access


def _strop(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "strop.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_revoking_every_key_never_opens_a_server_bound_beyond_loopback(strop_home):
    env = os.environ | {"STROP_HOME": str(strop_home)}
    secret = _strop("keys", "create", "--org", "acme", env=env).strip().splitlines()[-1]
    key_id = _strop("keys", "list", env=env).split("key-", 1)[1].split()[0]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "strop.cli", "serve", "--host", "0.0.0.0",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1/files"
    try:
        def answered():
            try:
                return httpx.get(url, headers={"Authorization": f"Bearer {secret}"}, timeout=2)
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                return None

        assert wait_for(answered, timeout=90, interval=0.3).status_code == 200
        _strop("keys", "revoke", f"key-{key_id}", env=env)
        time.sleep(AUTH_CACHE_SECONDS + 0.2)
        for header in ({}, {"Authorization": f"Bearer {secret}"},
                       {"Authorization": "Bearer nope"}):
            response = httpx.get(url, headers=header, timeout=5)
            assert response.status_code == 401, (header, response.text)
            assert response.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
    finally:
        server.terminate()
        server.wait(30)


def test_a_loopback_server_whose_keys_were_all_revoked_stays_closed(strop_home):
    settings = Settings.load(home=strop_home)
    store = Store(settings.database_url)
    with store.session() as session:
        key, _ = access.create_key(session, "acme")
        access.revoke_key(session, key.id)
    with serving(create_app(settings, store=store)) as url:
        assert httpx.get(f"{url}/files", timeout=5).status_code == 401
        assert httpx.get(f"{url}/files", headers={"Authorization": "Bearer x"},
                         timeout=5).status_code == 401


def test_open_mode_is_never_granted_beyond_loopback(strop_home):
    settings = Settings.load(home=strop_home, server={"host": "0.0.0.0"})
    with serving(create_app(settings)) as url:
        assert httpx.get(f"{url}/files", timeout=5).status_code == 401


def _chunked_refusal(port: int, path: str, limit: int, content_type: str) -> tuple[bytes, int]:
    """Send a chunked body (no Content-Length) until the server answers; return its answer and
    how many body bytes had been sent by then."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"a" * 65536
    sent = 0
    if content_type.startswith("multipart/"):  # a real upload's opening, then its bytes
        opening = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"'
                   b"\r\nContent-Type: application/octet-stream\r\n\r\n")
        sock.sendall(b"%x\r\n%s\r\n" % (len(opening), opening))
    try:
        while sent < 64 * limit:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        deadline = time.monotonic() + 10
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer, sent
    finally:
        sock.close()


@pytest.mark.parametrize("path, content_type", [
    ("/v1/files", "multipart/form-data; boundary=x"),
    ("/v1/fine_tuning/jobs", "application/json"),
])
def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(strop_home, path,
                                                                  content_type):
    limit = 1024 * 1024
    settings = Settings.load(home=strop_home, server={"max_upload_bytes": limit,
                                                       "max_request_bytes": limit})
    with serving(create_app(settings)) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        answer, sent = _chunked_refusal(port, path, limit, content_type)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * limit  # refused while the body was arriving, not after all of it
    assert not [item for item in settings.files_dir.rglob("*") if item.is_file()]


def test_a_declared_length_over_the_limit_is_refused_before_reading(strop_home):
    settings = Settings.load(home=strop_home, server={"max_request_bytes": 1000})
    with serving(create_app(settings)) as url:
        response = httpx.post(f"{url}/fine_tuning/jobs", content=b"{" + b" " * 5000 + b"}",
                              headers={"Content-Type": "application/json"}, timeout=10)
        small = httpx.post(f"{url}/fine_tuning/jobs", json={"model": "x"}, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert "server.max_request_bytes" in response.json()["error"]["message"]
    assert small.status_code == 400  # under the limit: the route's own validation answers


def test_every_file_and_folder_strop_writes_is_private(strop_home, tmp_path):
    os.umask(0o022)  # as a user's shell leaves it
    settings = Settings.load(home=strop_home)
    training = write_jsonl(tmp_path / "train.jsonl", chat_examples(12))
    with serving(create_app(settings)) as url:
        with training.open("rb") as handle:
            response = httpx.post(f"{url}/files", files={"file": ("train.jsonl", handle)},
                                  data={"purpose": "fine-tune"}, timeout=30)
        assert response.status_code == 200, response.text
        file_id = response.json()["id"]
        wait_for(lambda: httpx.get(f"{url}/files/{file_id}").json()["status"] == "processed")
    for path in [strop_home, *strop_home.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
    assert (strop_home / "strop.db").is_file() and settings.audit_log.path.is_file()


def test_api_description_needs_a_key_once_keys_exist_and_uses_no_cdn(strop_home):
    settings = Settings.load(home=strop_home)
    store = Store(settings.database_url)
    with serving(create_app(settings, store=store)) as url:
        root = url.removesuffix("/v1")
        page = httpx.get(f"{root}/docs", timeout=5)
        assert page.status_code == 200
        assert "https://" not in page.text and "/docs/assets/swagger-ui-bundle.js" in page.text
        assert httpx.get(f"{root}/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert "/v1/fine_tuning/jobs" in httpx.get(f"{root}/openapi.json").json()["paths"]
        assert httpx.get(f"{root}/redoc").status_code == 404
        with store.session() as session:
            _, secret = access.create_key(session, "acme")
        time.sleep(AUTH_CACHE_SECONDS + 0.1)
        for route in ("/openapi.json", "/docs"):
            assert httpx.get(f"{root}{route}").status_code == 401
            assert httpx.get(f"{root}{route}",
                             headers={"Authorization": f"Bearer {secret}"}).status_code == 200
