"""POST /v1/chat/completions driven by the official openai client in strict validation mode."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from strop.serving.generation import SamplingParams
from strop.serving import Engine
from strop.settings import ServingSettings
from test_serving import make_resolver, tiny_adapters  # noqa: F401  (fixture re-export)

HELLO = [{"role": "user", "content": "Hello! How can I help you today?"}]


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tiny_adapters):
    return Engine(make_resolver(tiny_model_dir, tiny_adapters), ServingSettings())


@pytest.fixture(scope="module")
def app(engine):
    from strop.server import chat

    application = FastAPI()
    application.include_router(chat.router, prefix="/v1")
    application.state.engine = engine
    return application


@pytest.fixture(scope="module")
def http(app):
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def client(http):
    return openai.OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http,
                         max_retries=0, _strict_response_validation=True)


def test_completion_has_openai_shape_and_usage(client, engine):
    result = client.chat.completions.create(model="ft:tiny:org::0", messages=HELLO,
                                            temperature=0, max_tokens=16)
    assert result.id.startswith("chatcmpl-")
    assert result.object == "chat.completion"
    assert result.model == "ft:tiny:org::0"
    (choice,) = result.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert choice.logprobs is None
    expected = engine.complete("ft:tiny:org::0", HELLO,
                               SamplingParams(max_tokens=16, temperature=0))
    assert choice.message.content == expected.text
    assert result.usage.prompt_tokens == engine.count_prompt_tokens("ft:tiny:org::0", HELLO)
    assert result.usage.completion_tokens == expected.completion_tokens
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_stream_matches_plain_completion_and_ends_with_done(client, http):
    plain = client.chat.completions.create(model="ft:tiny:org::1", messages=HELLO,
                                           temperature=0, max_tokens=20)
    chunks = list(client.chat.completions.create(
        model="ft:tiny:org::1", messages=HELLO, temperature=0, max_tokens=20, stream=True,
        stream_options={"include_usage": True}))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens

    raw = http.post("/v1/chat/completions", json={"model": "tiny", "messages": HELLO,
                                                   "max_tokens": 5, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(event.startswith("data: ") for event in events)
    assert all("usage" not in json.loads(e[6:]) for e in events[:-1])


def test_stop_string_cuts_the_reply(client):
    full = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                          max_tokens=40).choices[0].message.content
    assert len(full) > 6, full
    stop = full[3:6]
    cut = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                         max_tokens=40, stop=[stop, "never-appears"])
    choice = cut.choices[0]
    assert choice.message.content == full[:full.index(stop)]
    assert choice.finish_reason == "stop"
    single = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0,
                                            max_tokens=40, stop=stop)
    assert single.choices[0].message.content == choice.message.content


def test_n_choices_and_seeded_sampling(client):
    def sample(seed, n=3):
        result = client.chat.completions.create(model="ft:tiny:org::0", messages=HELLO,
                                                temperature=1.0, max_tokens=12, n=n, seed=seed)
        assert [c.index for c in result.choices] == list(range(n))
        return result

    first, again, other = sample(7), sample(7), sample(8)
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in again.choices]
    assert texts != [c.message.content for c in other.choices]
    assert len(set(texts)) > 1  # the n choices are distinct samples, not copies
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_max_tokens_gives_finish_reason_length(client):
    long = client.chat.completions.create(model="ft:tiny:org::2", messages=HELLO, temperature=0,
                                          max_tokens=30)
    assert long.usage.completion_tokens > 3, "the reference reply must be longer than 3 tokens"
    for limit in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        short = client.chat.completions.create(model="ft:tiny:org::2", messages=HELLO,
                                               temperature=0, **limit)
        assert short.choices[0].finish_reason == "length"
        assert short.usage.completion_tokens == 3


def test_unknown_model_is_openai_404(client, http):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="ft:tiny:org::missing", messages=HELLO)
    assert caught.value.status_code == 404
    body = http.post("/v1/chat/completions",
                     json={"model": "ft:tiny:org::missing", "messages": HELLO,
                           "stream": True}).json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "model_not_found"
    assert body["error"]["param"] == "model"


@pytest.mark.parametrize("body, param", [
    ({"model": "tiny", "messages": HELLO, "temperature": 3}, "temperature"),
    ({"model": "tiny", "messages": []}, "messages"),
    ({"model": "tiny", "messages": HELLO, "n": 0}, "n"),
    ({"model": "tiny", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "tiny", "messages": HELLO, "tools": [{"type": "function"}]}, "tools"),
    ({"messages": HELLO}, "model"),
])
def test_bad_parameters_are_openai_400s(http, body, param):
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_client_disconnect_stops_generation(app, engine):
    """A real server: close the stream after two chunks; the engine must stop decoding."""
    import uvicorn

    import strop.serving.generation as generation

    steps = []
    original = generation.generate_token_ids
    original_stops = generation.stop_token_ids

    def slow_tokens(*args, **kwargs):
        for token in original(*args, **kwargs):
            steps.append(token)
            time.sleep(0.02)
            yield token

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    generation.generate_token_ids = slow_tokens
    generation.stop_token_ids = lambda model, tokenizer: set()  # never end by itself
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        body = {"model": "tiny", "messages": HELLO, "max_tokens": 400, "temperature": 1.0,
                "seed": 1, "stream": True}
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                          timeout=30) as response:
            lines = response.iter_lines()
            received = [next(lines) for _ in range(3)]
        assert received[0].startswith("data: ")
        at_close = len(steps)
        assert at_close < 100
        time.sleep(1.0)
        # with 20 ms per token the full reply would take seconds; a stopped one stays put
        assert len(steps) <= at_close + 3, (at_close, len(steps))
        quick = engine.complete("tiny", HELLO, generation.SamplingParams(max_tokens=2,
                                                                        temperature=0))
        assert quick.finish_reason in ("stop", "length")
    finally:
        generation.generate_token_ids = original
        generation.stop_token_ids = original_stops
        server.should_exit = True
        thread.join(timeout=10)


def test_mounted_in_the_real_app(tiny_model_dir, strop_home):
    """Through create_app: auth and the store's resolver in front of the engine."""
    from strop.server import create_app
    from strop.settings import Settings

    app = create_app(Settings.load(home=strop_home))
    with TestClient(app) as http:
        api = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http,
                            max_retries=0, _strict_response_validation=True)
        reply = api.chat.completions.create(model=str(tiny_model_dir), messages=HELLO,
                                            temperature=0, max_tokens=4)
        assert reply.choices[0].message.role == "assistant"
        assert 1 <= reply.usage.completion_tokens <= 4
        with pytest.raises(openai.NotFoundError):
            api.chat.completions.create(model="ft:tiny:someone-else::ftjob-x", messages=HELLO)
