"""`strop chat`: talk to a base or tuned model in the terminal, tokens streamed as they come."""

from __future__ import annotations

import time

import typer

from strop.cli.app import app, console, errors, fail, progress_printer
from strop.serving.generation import SamplingParams, stream_chat
from strop.models import DEFAULT_MODEL, ModelError, load


def _reply(loaded, messages: list[dict], params: SamplingParams) -> str:
    stats: dict = {}
    started = time.perf_counter()
    pieces = []
    for piece in stream_chat(loaded.model, loaded.tokenizer, messages, params, stats):
        pieces.append(piece)
        console.print(piece, end="", highlight=False, markup=False, soft_wrap=True)
    console.print()
    elapsed = time.perf_counter() - started
    errors.print(
        f"[dim]{stats['completion_tokens']} tokens in {elapsed:.1f} s "
        f"({stats['completion_tokens'] / max(elapsed, 1e-9):.1f} tokens/s), "
        f"finish: {stats['finish_reason']}[/]"
    )
    return "".join(pieces)


def _model_folder(name: str) -> str:
    """ft: names (and their checkpoints) live in the service's store; the rest load by name."""
    if not name.startswith("ft:"):
        return name
    from strop.evaluate.locate import locate

    return str(locate(name).model_dir)  # LocateError is a ValueError naming what was tried


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
    try:
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                seed=seed)
        loaded = load(_model_folder(model), progress=progress_printer)
    except (ModelError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc))
    if hasattr(loaded.model, "merge_and_unload"):
        # Merged into the base weights (loaded for this session only), a LoRA adapter decodes
        # through strop.serving.decoder as fast as the base model.
        loaded.model = loaded.model.merge_and_unload()
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if message is not None:
        _reply(loaded, history + [{"role": "user", "content": message}], params)
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
        history.append({"role": "assistant", "content": _reply(loaded, history, params)})
