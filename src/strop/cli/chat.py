"""`strop chat`: talk to a base or tuned model in the terminal, tokens streamed as they come.

The model is served by the same engine as /v1/chat/completions (decoder, serving precision
`serving.dtype`, adapter merge), so a reply here is the reply the server would give."""

from __future__ import annotations

import time

import typer

from strop.cli.app import app, console, errors, fail, load_settings, progress_printer
from strop.models import DEFAULT_MODEL
from strop.serving import Engine, ModelNotFoundError, ServingError
from strop.serving.generation import SamplingParams


def _reply(engine: Engine, model: str, messages: list[dict], params: SamplingParams) -> str:
    stats: dict = {}
    started = time.perf_counter()
    pieces = []
    try:
        for piece in engine.stream(model, messages, params, stats=stats):
            pieces.append(piece)
            console.print(piece, end="", highlight=False, markup=False, soft_wrap=True)
    except ServingError as exc:  # e.g. the conversation outgrew the model's context
        console.print()
        raise fail(exc.message)
    console.print()
    elapsed = time.perf_counter() - started
    errors.print(
        f"[dim]{stats['completion_tokens']} tokens in {elapsed:.1f} s "
        f"({stats['completion_tokens'] / max(elapsed, 1e-9):.1f} tokens/s), "
        f"finish: {stats['finish_reason']}[/]"
    )
    return "".join(pieces)


@app.command()
def chat(
    message: str = typer.Argument(None, help="Message to send; omit for an interactive loop."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m",
                              help="Base model name or folder, tuned model folder, or ft: name."),
    system: str = typer.Option(None, "--system", help="System prompt."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, max=2.0,
                                      help="0 is greedy and deterministic."),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
    seed: int = typer.Option(None, "--seed"),
) -> None:
    """Chat with a model using its own chat template."""
    from strop.store.served import local_resolver

    settings = load_settings()
    try:
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                seed=seed)
        engine = Engine(local_resolver(settings), settings.serving, progress=progress_printer)
        with engine.hold(model):  # load now, so that a bad name fails before the first prompt
            pass
    except (ModelNotFoundError, ValueError) as exc:
        raise fail(str(exc))
    except ServingError as exc:
        raise fail(exc.message)
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if message is not None:
        _reply(engine, model, history + [{"role": "user", "content": message}], params)
        return
    errors.print(f"[dim]Chatting with {model}. Empty line or Ctrl-D to quit.[/]")
    while True:
        try:
            text = console.input("[bold]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            break
        if not text.strip():
            break
        history.append({"role": "user", "content": text})
        history.append({"role": "assistant", "content": _reply(engine, model, history, params)})
