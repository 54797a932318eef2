"""The control plane through the official openai client (strict response validation), no
training involved: files, job bookkeeping, paging, errors, auth and organisation isolation."""

from __future__ import annotations

import json

import openai
import pytest

from server_harness import chat_examples, client, serving, wait_for, write_jsonl
from strop.server import create_app
from strop.settings import Settings
from strop.store import Store, access


@pytest.fixture
def settings(strop_home, database_url):
    return Settings.load(home=strop_home, database={"url": database_url})


@pytest.fixture
def base_url(settings):
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
def api(base_url):
    return client(base_url)


@pytest.fixture
def training_file(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", chat_examples(12))


def test_upload_reaches_processed_and_content_round_trips(api, training_file):
    uploaded = api.files.create(file=training_file.open("rb"), purpose="fine-tune")
    assert uploaded.id.startswith("file-")
    assert uploaded.bytes == training_file.stat().st_size
    assert uploaded.filename == "train.jsonl"
    processed = api.files.wait_for_processing(uploaded.id, poll_interval=0.05, max_wait_seconds=30)
    assert processed.status == "processed", processed.status_details
    assert api.files.content(uploaded.id).content == training_file.read_bytes()
    assert api.files.retrieve(uploaded.id).id == uploaded.id


def test_invalid_upload_is_kept_with_error_status_naming_the_line(api, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = [json.dumps(example) for example in chat_examples(12)]
    lines[4] = '{"messages": [{"role": "user", "content": "unterminated"'
    bad.write_text("\n".join(lines) + "\n")
    uploaded = api.files.create(file=bad.open("rb"), purpose="fine-tune")
    processed = api.files.wait_for_processing(uploaded.id, poll_interval=0.05, max_wait_seconds=30)
    assert processed.status == "error"
    assert "line 5" in processed.status_details.lower()


def test_upload_over_the_size_limit_is_rejected_and_leaves_nothing(strop_home, tmp_path):
    settings = Settings.load(home=strop_home, server={"max_upload_bytes": 100})
    big = write_jsonl(tmp_path / "big.jsonl", chat_examples(12))
    with serving(create_app(settings)) as url:
        api = client(url)
        with pytest.raises(openai.APIStatusError) as caught:
            api.files.create(file=big.open("rb"), purpose="fine-tune")
        assert caught.value.status_code == 413
        assert caught.value.body["code"] == "file_too_large"
        assert api.files.list().data == []
    leftovers = [path for path in settings.files_dir.rglob("*") if path.is_file()]
    assert leftovers == []


def test_upload_with_a_wrong_purpose_is_a_400(api, training_file):
    with pytest.raises(openai.BadRequestError) as caught:
        api.files.create(file=training_file.open("rb"), purpose="batch")
    assert caught.value.body["param"] == "purpose"


def test_files_list_pages_with_after_limit_and_order(api, training_file):
    ids = [api.files.create(file=training_file.open("rb"), purpose="fine-tune").id
           for _ in range(5)]
    first = api.files.list(limit=2)
    assert [item.id for item in first.data] == ids[::-1][:2]
    assert first.has_more is True
    every = [item.id for item in api.files.list(limit=2)]
    assert every == ids[::-1]
    ascending = api.files.list(limit=10, order="asc")
    assert [item.id for item in ascending.data] == ids
    assert ascending.has_more is False


def test_deleted_file_is_gone(api, training_file):
    uploaded = api.files.create(file=training_file.open("rb"), purpose="fine-tune")
    deleted = api.files.delete(uploaded.id)
    assert deleted.deleted is True and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(uploaded.id)


def test_unknown_ids_are_404_in_openai_shape(api):
    with pytest.raises(openai.NotFoundError) as caught:
        api.files.retrieve("file-doesnotexist")
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    for call in (lambda: api.fine_tuning.jobs.retrieve("ftjob-nope"),
                 lambda: api.fine_tuning.jobs.list_events("ftjob-nope"),
                 lambda: api.fine_tuning.jobs.checkpoints.list("ftjob-nope"),
                 lambda: api.fine_tuning.jobs.cancel("ftjob-nope"),
                 lambda: api.models.retrieve("ft:tiny:local::nothing"),
                 lambda: api.models.delete("ft:tiny:local::nothing")):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["type"] == "invalid_request_error"


def _upload(api, path) -> str:
    return api.files.create(file=path.open("rb"), purpose="fine-tune").id


def test_job_is_created_with_every_field_and_listed(api, training_file, tiny_model_dir):
    file_id = _upload(api, training_file)
    job = api.fine_tuning.jobs.create(
        model=str(tiny_model_dir), training_file=file_id, suffix="support-bot", seed=7,
        metadata={"team": "support"},
        method={"type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}})
    assert job.id.startswith("ftjob-")
    assert job.status == "validating_files"
    assert job.seed == 7 and job.metadata == {"team": "support"}
    assert job.hyperparameters.n_epochs == 1 and job.hyperparameters.batch_size == 4
    assert job.hyperparameters.learning_rate_multiplier == "auto"
    assert job.method.type == "supervised"
    assert job.organization_id.startswith("org-")
    assert job.result_files == [] and job.fine_tuned_model is None and job.error is None
    assert api.fine_tuning.jobs.retrieve(job.id).id == job.id
    events = api.fine_tuning.jobs.list_events(job.id)
    assert events.data[0].message == f"Created fine-tuning job: {job.id}"


def test_legacy_hyperparameters_form_is_accepted(api, training_file, tiny_model_dir):
    job = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=_upload(api, training_file),
                                      hyperparameters={"n_epochs": 2})
    assert job.method.type == "supervised"
    assert job.method.supervised.hyperparameters.n_epochs == 2
    assert job.hyperparameters.n_epochs == 2


@pytest.mark.parametrize("change, param", [
    ({"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
    ({"hyperparameters": {"learning_rate_multiplier": 0}}, "hyperparameters.learning_rate_multiplier"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 2.5}}}}, "method.dpo.hyperparameters.beta"),
    ({"suffix": "x" * 65}, "suffix"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
])
def test_out_of_range_parameters_are_400_naming_the_field(api, training_file, tiny_model_dir,
                                                          change, param):
    with pytest.raises(openai.BadRequestError) as caught:
        api.fine_tuning.jobs.create(model=str(tiny_model_dir),
                                    training_file=_upload(api, training_file), **change)
    assert caught.value.body["param"] is not None
    assert caught.value.body["param"].startswith(param)


def test_an_out_of_range_value_is_explained_with_its_range(api, training_file, tiny_model_dir):
    with pytest.raises(openai.BadRequestError) as caught:
        api.fine_tuning.jobs.create(model=str(tiny_model_dir),
                                    training_file=_upload(api, training_file),
                                    hyperparameters={"n_epochs": 51})
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "message": "Invalid value for 'hyperparameters.n_epochs': n_epochs must be between 1 "
                   "and 50, got 51",
        "type": "invalid_request_error", "param": "hyperparameters.n_epochs",
        "code": "invalid_value"}


def test_unknown_model_and_unknown_file_are_400(api, training_file, tiny_model_dir):
    with pytest.raises(openai.BadRequestError) as caught:
        api.fine_tuning.jobs.create(model="no-such-model", training_file=_upload(api, training_file))
    assert caught.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as caught:
        api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file="file-missing")
    assert caught.value.body["param"] == "training_file"


def test_jobs_page_newest_first_and_filter_by_metadata(api, training_file, tiny_model_dir):
    file_id = _upload(api, training_file)
    ids = [api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id,
                                       metadata={"parity": "even" if n % 2 == 0 else "odd"}).id
           for n in range(5)]
    page = api.fine_tuning.jobs.list(limit=2)
    assert [job.id for job in page.data] == ids[::-1][:2] and page.has_more
    assert [job.id for job in api.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    even = api.fine_tuning.jobs.list(metadata={"parity": "even"})
    assert [job.id for job in even.data] == [ids[4], ids[2], ids[0]]
    after = api.fine_tuning.jobs.list(limit=2, after=ids[4])
    assert [job.id for job in after.data] == [ids[3], ids[2]] and after.has_more
    even_after = api.fine_tuning.jobs.list(metadata={"parity": "even"}, after=ids[4])
    assert [job.id for job in even_after.data] == [ids[2], ids[0]] and not even_after.has_more


def test_cancel_a_waiting_job_then_cancel_again_is_400(api, training_file, tiny_model_dir):
    job = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=_upload(api, training_file))
    cancelled = api.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    with pytest.raises(openai.BadRequestError) as caught:
        api.fine_tuning.jobs.cancel(job.id)
    assert caught.value.status_code == 400
    assert "cancelled" in caught.value.body["message"]


def test_pause_needs_a_running_job(api, training_file, tiny_model_dir):
    job = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=_upload(api, training_file))
    with pytest.raises(openai.BadRequestError):
        api.fine_tuning.jobs.pause(job.id)
    with pytest.raises(openai.BadRequestError):
        api.fine_tuning.jobs.resume(job.id)


def test_events_page_with_after(api, training_file, tiny_model_dir, settings):
    from strop.store import jobs as job_queries

    job = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=_upload(api, training_file))
    store = Store(settings.database_url)
    with store.session() as session:
        for step in range(1, 6):
            job_queries.add_event(session, job.id, f"Step {step}/5", type="metrics",
                                  data={"step": step})
    first = api.fine_tuning.jobs.list_events(job.id, limit=3)
    assert [event.message for event in first.data] == ["Step 5/5", "Step 4/5", "Step 3/5"]
    assert first.has_more is True and first.data[0].type == "metrics"
    rest = api.fine_tuning.jobs.list_events(job.id, limit=10, after=first.data[-1].id)
    assert [event.message for event in rest.data] == ["Step 2/5", "Step 1/5",
                                                      f"Created fine-tuning job: {job.id}"]
    assert rest.has_more is False


def test_base_models_are_listed_and_retrievable(api):
    from strop.models import DEFAULT_MODEL

    listed = [model.id for model in api.models.list()]
    assert DEFAULT_MODEL in listed
    assert api.models.retrieve(DEFAULT_MODEL).id == DEFAULT_MODEL
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve("not-a-model")


def test_errors_never_leak_tracebacks(base_url):
    import httpx

    response = httpx.post(f"{base_url}/fine_tuning/jobs", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    response = httpx.get(f"{base_url}/nowhere")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"


def test_keys_are_required_once_configured_and_organisations_are_isolated(settings, training_file,
                                                                          tiny_model_dir):
    store = Store(settings.database_url)
    with store.session() as session:
        _, acme_key = access.create_key(session, "acme")
        _, globex_key = access.create_key(session, "globex")
        revoked, revoked_key = access.create_key(session, "acme")
        access.revoke_key(session, revoked.id)
    with serving(create_app(settings, store=store)) as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, api_key="sk-strop-wrong").files.list()
        with pytest.raises(openai.AuthenticationError):
            client(url, api_key=revoked_key).files.list()
        acme, globex = client(url, acme_key), client(url, globex_key)
        file_id = acme.files.create(file=training_file.open("rb"), purpose="fine-tune").id
        job = acme.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id)
        assert [item.id for item in acme.files.list().data] == [file_id]
        assert globex.files.list().data == []
        assert globex.fine_tuning.jobs.list().data == []
        with pytest.raises(openai.NotFoundError):
            globex.files.retrieve(file_id)
        with pytest.raises(openai.NotFoundError):
            globex.files.content(file_id)
        with pytest.raises(openai.NotFoundError):
            globex.fine_tuning.jobs.retrieve(job.id)
        with pytest.raises(openai.NotFoundError):
            globex.fine_tuning.jobs.cancel(job.id)
        with pytest.raises(openai.BadRequestError):  # another organisation's file is no file
            globex.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id)
        assert job.organization_id != globex.fine_tuning.jobs.create(
            model=str(tiny_model_dir),
            training_file=globex.files.create(file=training_file.open("rb"),
                                              purpose="fine-tune").id).organization_id


def test_an_unexpected_server_error_is_a_500_in_openai_shape(settings):
    import httpx

    app = create_app(settings)

    def explode():
        raise RuntimeError("disk on fire")

    app.add_api_route("/v1/explode", explode)
    with serving(app) as url:
        response = httpx.get(f"{url}/explode")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and "RuntimeError" in error["message"]
    assert "Traceback" not in response.text


def test_a_key_created_while_serving_is_required_within_the_auth_cache_time(settings):
    import time

    from strop.server.auth import AUTH_CACHE_SECONDS

    store = Store(settings.database_url)
    with serving(create_app(settings, store=store)) as url:
        assert client(url, api_key="anything").files.list().data == []  # no keys: local org
        with store.session() as session:
            _, secret = access.create_key(session, "acme")
        time.sleep(AUTH_CACHE_SECONDS + 0.1)
        with pytest.raises(openai.AuthenticationError):
            client(url, api_key="anything").files.list()
        assert client(url, api_key=secret).files.list().data == []
