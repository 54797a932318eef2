"""POST /v1/chat/completions: OpenAI's chat completions over the inference engine.

Generation runs in a worker thread (the engine is synchronous and holds a lock per generation);
this module turns OpenAI's request into engine calls and the engine's text back into OpenAI's
objects, plain or as server-sent events. A client that goes away sets a stop flag the engine
checks between tokens, so an abandoned request stops spending CPU within one token.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from strop.serving.generation import SamplingParams
from strop.serving import Engine, ModelNotFoundError, ServingError

router = APIRouter()

MAX_CHOICES = 8
MAX_STOP_SEQUENCES = 4
DEFAULT_MAX_TOKENS = 512
DISCONNECT_POLL_SECONDS = 0.1
# Generations wait for the engine lock in these threads, so that queued requests cannot starve
# the threads the rest of the server uses.
_generation_threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="strop-generate")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict] | None = None
    name: str | None = None

    def text(self, index: int) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        pieces = []
        for part_index, part in enumerate(self.content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _BadRequest(
                    f"messages[{index}].content[{part_index}] is of type "
                    f"'{part.get('type')}'; strop serves text-only models, so only 'text' parts "
                    "are accepted.", param=f"messages.[{index}].content")
            pieces.append(part["text"])
        return "".join(pieces)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The parameters strop honours; the rest of OpenAI's are accepted only at their defaults."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=MAX_CHOICES)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    tools: list[dict] | None = None
    response_format: dict | None = None

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value):
        if isinstance(value, str):
            value = [value]
        if value is not None:
            if len(value) > MAX_STOP_SEQUENCES:
                raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
            if any(not piece for piece in value):
                raise ValueError("stop sequences must not be empty")
        return value


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = "invalid_value"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _error(status: int, message: str, param: str | None = None, code: str | None = None,
           type: str | None = None) -> JSONResponse:
    type = type or ("server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}},
                        status_code=status)


def _unsupported(request: ChatCompletionRequest) -> None:
    """Refuse, rather than silently ignore, parameters that would change the answer."""
    if request.tools:
        raise _BadRequest("Tool calling is not supported by strop's chat completions.",
                          param="tools", code="unsupported_parameter")
    if request.logprobs:
        raise _BadRequest("logprobs are not supported by strop's chat completions.",
                          param="logprobs", code="unsupported_parameter")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name):
            raise _BadRequest(f"{name} is not supported by strop; leave it at 0.", param=name,
                              code="unsupported_parameter")
    if request.response_format and request.response_format.get("type") not in (None, "text"):
        raise _BadRequest("Only response_format {'type': 'text'} is supported by strop.",
                          param="response_format", code="unsupported_parameter")


def _sampling(request: ChatCompletionRequest, choice: int) -> SamplingParams:
    if request.max_tokens and request.max_completion_tokens and \
            request.max_tokens != request.max_completion_tokens:
        raise _BadRequest("max_tokens and max_completion_tokens disagree; send only one.",
                          param="max_completion_tokens")
    seed = None if request.seed is None else request.seed + choice  # n choices must differ
    return SamplingParams(
        max_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=seed,
        stop=tuple(request.stop or ()),
    )


def engine_for(app) -> Engine:
    """The app's engine, created on first use over the control plane's model resolver."""
    engine = getattr(app.state, "engine", None)
    if engine is None:
        with _engine_creation:
            engine = getattr(app.state, "engine", None)
            if engine is None:
                engine = Engine(app.state.resolve_model, app.state.settings.serving)
                app.state.engine = engine
    return engine


_engine_creation = threading.Lock()


async def _organization(request: Request) -> str | None:
    store = getattr(request.app.state, "store", None)
    if store is None:  # an app without the control plane (tests of the engine alone)
        return None
    from strop.server.auth import caller

    return (await caller(request)).organization_id


@router.post("/chat/completions")
async def create_chat_completion(request: Request):
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "The request body is not valid JSON.", code="invalid_json")
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.", code="invalid_json")
    organization = await _organization(request)
    try:
        parsed = ChatCompletionRequest.model_validate(body)
        _unsupported(parsed)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text(i)}
                    for i, m in enumerate(parsed.messages)]
        params = [_sampling(parsed, choice) for choice in range(parsed.n or 1)]
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
        return _error(400, f"Invalid value for '{param}': {first['msg']}", param, code)
    except _BadRequest as exc:
        return _error(400, exc.message, exc.param, exc.code)
    except ValueError as exc:  # SamplingParams' own checks
        return _error(400, str(exc), code="invalid_value")

    engine = engine_for(request.app)
    call = _Call(engine, parsed.model, organization, messages)
    if parsed.stream:
        include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
        return await _stream(request, call, params, include_usage)
    return await _complete(request, call, params)


class _Call:
    """One request's identity and its stop flag, shared by every choice it generates."""

    def __init__(self, engine: Engine, model: str, organization: str | None,
                 messages: list[dict]):
        self.engine, self.model, self.organization, self.messages = (
            engine, model, organization, messages)
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.stopped = threading.Event()
        self.fingerprint = f"strop-{engine.settings.dtype}"

    def generate(self, params: SamplingParams, on_text=None):
        return self.engine.complete(self.model, self.messages, params, self.organization,
                                    self.stopped.is_set, on_text)


def _failure(exc: Exception) -> tuple[int, str, str | None, str | None, str | None]:
    if isinstance(exc, ModelNotFoundError):
        return 404, exc.message, "model", "model_not_found", "invalid_request_error"
    if isinstance(exc, ServingError):
        return exc.status, exc.message, exc.param, exc.code, exc.type
    raise exc


async def _watch_disconnect(request: Request, call: _Call) -> None:
    while not call.stopped.is_set():
        if await request.is_disconnected():
            call.stopped.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


async def _complete(request: Request, call: _Call, params: list[SamplingParams]):
    def run_all():
        return [call.generate(choice_params) for choice_params in params]

    watcher = asyncio.create_task(_watch_disconnect(request, call))
    started = time.perf_counter()
    try:
        completions = await asyncio.get_running_loop().run_in_executor(
            _generation_threads, run_all)
    except (ModelNotFoundError, ServingError) as exc:
        return _error(*_failure(exc))
    finally:
        call.stopped.set()
        watcher.cancel()
    prompt_tokens = completions[0].prompt_tokens
    completion_tokens = sum(c.completion_tokens for c in completions)
    metrics = getattr(request.app.state, "metrics", None)  # absent on a bare chat router
    if metrics is not None:
        metrics.decoded(completion_tokens, time.perf_counter() - started)
    return {
        "id": call.id,
        "object": "chat.completion",
        "created": call.created,
        "model": call.model,
        "system_fingerprint": call.fingerprint,
        "choices": [
            {"index": index, "message": {"role": "assistant", "content": c.text, "refusal": None},
             "finish_reason": c.finish_reason, "logprobs": None}
            for index, c in enumerate(completions)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _sse(payload: dict | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


async def _stream(request: Request, call: _Call, params: list[SamplingParams],
                  include_usage: bool):
    """Start generating, and answer with an HTTP error if the very first step fails (unknown
    model, bad prompt); once the stream has started, errors travel as an SSE error event."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    def put(item) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run_all() -> None:
        try:
            for index, choice_params in enumerate(params):
                completion = call.generate(choice_params,
                                           lambda text, index=index: put(("text", index, text)))
                put(("end", index, completion))
                if call.stopped.is_set():
                    break
        except BaseException as exc:  # handed to the event loop, which decides how to answer
            put(("error", exc))
        finally:
            put(done)

    # Headers wait for the first token, so a request that fails before generating anything
    # (unknown model, prompt too long) gets a proper HTTP error instead of a broken stream.
    watcher = asyncio.create_task(_watch_disconnect(request, call))
    worker = loop.run_in_executor(_generation_threads, run_all)
    try:
        first = await queue.get()
    finally:
        watcher.cancel()
    if first is done:  # the client left before the first token
        return _error(499, "The client closed the request.", code="client_closed_request")
    if first[0] == "error":
        await worker
        return _error(*_failure(first[1]))

    def chunk(choices: list[dict], usage: dict | None = None) -> dict:
        body = {"id": call.id, "object": "chat.completion.chunk", "created": call.created,
                "model": call.model, "system_fingerprint": call.fingerprint, "choices": choices}
        if include_usage:
            body["usage"] = usage
        return body

    def delta(index: int, content: dict, finish_reason: str | None = None) -> str:
        return _sse(chunk([{"index": index, "delta": content, "finish_reason": finish_reason,
                            "logprobs": None}]))

    async def events():
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        started: set[int] = set()
        item = first
        try:
            while item is not done:
                kind, index = item[0], item[1] if len(item) > 1 else None
                if kind in ("text", "end") and index not in started:
                    started.add(index)
                    yield delta(index, {"role": "assistant", "content": ""})
                if kind == "text":
                    yield delta(index, {"content": item[2]})
                elif kind == "end":
                    completion = item[2]
                    usage["prompt_tokens"] = completion.prompt_tokens
                    usage["completion_tokens"] += completion.completion_tokens
                    if completion.finish_reason == "cancelled":
                        return
                    yield delta(index, {}, completion.finish_reason)
                elif kind == "error":
                    error = item[1]
                    if isinstance(error, (ModelNotFoundError, ServingError)):
                        _, message, param, code, error_type = _failure(error)
                    else:
                        message, param, code, error_type = (
                            f"Generation failed ({type(error).__name__}).", None, "server_error",
                            "server_error")
                    yield _sse({"error": {"message": message, "type": error_type,
                                          "param": param, "code": code}})
                    return
                if await request.is_disconnected():
                    return
                item = await queue.get()
            if include_usage:
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                yield _sse(chunk([], usage))
            yield _sse("[DONE]")
        finally:
            # Reached on normal end, on disconnect, and when the server cancels the response.
            call.stopped.set()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

