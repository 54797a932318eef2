"""A server killed with SIGKILL loses nothing it acknowledged, and finishes what it left: a
file whose check was interrupted is checked on the next start, partial uploads are removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from server_harness import chat_examples, client, free_port, wait_for, write_jsonl
from strop.settings import Settings
from strop.store import Store
from strop.store.tables import StoredFile


def _start(env: dict, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "strop.cli", "serve", "--workers", "0",
                               "--port", str(port), "--no-access-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def up():
        assert server.poll() is None, server.stderr.read()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200
        except httpx.TransportError:
            return False
    wait_for(up, timeout=90, interval=0.2)
    return server


def test_a_killed_server_keeps_what_it_acknowledged_and_finishes_interrupted_checks(
        strop_home, tmp_path, database_url):
    env = os.environ | Settings.load(home=strop_home, database={"url": database_url}).environment()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = _start(env, port)
    try:
        api = client(url)
        uploads = []
        for index in range(3):
            path = write_jsonl(tmp_path / f"train-{index}.jsonl", chat_examples(10 + index))
            uploads.append((api.files.create(file=path.open("rb"), purpose="fine-tune"), path))
        for upload, _ in uploads:
            api.files.wait_for_processing(upload.id, max_wait_seconds=60)
        job = api.fine_tuning.jobs.create(model="smollm2-135m-instruct",
                                          training_file=uploads[0][0].id)
        events = [event.id for event in api.fine_tuning.jobs.list_events(job.id)]
        assert events
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    # What a SIGKILL in the middle of a check and of an upload leaves behind:
    store = Store(database_url)
    with store.session() as session:
        interrupted = session.query(StoredFile).filter(StoredFile.id == uploads[1][0].id).one()
        interrupted.status, interrupted.validation = "uploaded", None
    store.close()
    partial = strop_home / "files" / ".upload-killed"
    partial.write_bytes(b"half an upload")
    stale = time.time() - 3600
    os.utime(partial, (stale, stale))

    server = _start(env, port)
    try:
        api = client(url)
        checked = api.files.wait_for_processing(uploads[1][0].id, max_wait_seconds=60)
        assert checked.status == "processed"
        for upload, path in uploads:
            assert api.files.content(upload.id).content == path.read_bytes()
        assert [event.id for event in api.fine_tuning.jobs.list_events(job.id)][-len(events):] \
            == events
        assert api.fine_tuning.jobs.retrieve(job.id).status == "validating_files"
        assert not partial.exists()
    finally:
        server.terminate()
        server.wait(30)
