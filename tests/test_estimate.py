"""Estimate: epochs rule, price arithmetic against the published figures, FLOPs, wall time."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from strop.estimate import (EstimateError, estimate, load_prices, price_training, resolve_epochs,
                            training_flops)

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def test_shipped_price_table_holds_the_published_figures():
    priced = {p.label: p for p in price_training(load_prices(), 1_000_000)}
    assert priced["GPT-4.1"].training_cost == pytest.approx(25.00)
    assert priced["GPT-4.1 mini"].training_cost == pytest.approx(5.00)
    assert priced["GPT-4.1 nano"].training_cost == pytest.approx(1.50)
    # GPT-3.5: $0.008 per 1K training tokens
    assert priced["GPT-3.5 Turbo"].training_cost == pytest.approx(0.008 * 1000)
    rft = priced["o4-mini (reinforcement fine-tuning)"]
    assert rft.training_cost is None and "$100 per training hour" in rft.basis
    for price in priced.values():
        assert {"input_per_million", "output_per_million"} <= set(price.inference)


def test_price_scales_with_billed_tokens():
    priced = {p.label: p.training_cost for p in price_training(load_prices(), 123_456)}
    assert priced["GPT-4.1 nano"] == pytest.approx(123_456 / 1e6 * 1.5)


def test_custom_price_file_replaces_the_table(tmp_path):
    table = {"currency": "EUR", "models": [
        {"name": "house-model", "training": {"per_million_tokens": 2.0}}]}
    (tmp_path / "p.json").write_text(json.dumps(table))
    priced = price_training(load_prices(tmp_path / "p.json"), 3_000_000)
    assert [(p.name, p.training_cost) for p in priced] == [("house-model", 6.0)]
    (tmp_path / "bad.json").write_text(json.dumps({"models": [{"name": "x", "training": {}}]}))
    with pytest.raises(EstimateError, match=r"models\[0\]"):
        load_prices(tmp_path / "bad.json")


@pytest.mark.parametrize("examples,epochs", [(10, 10), (12, 9), (20, 5), (34, 3), (1000, 3),
                                             (9000, 2), (30000, 1), (3, 25)])
def test_auto_epochs_follow_openai(examples, epochs):
    assert resolve_epochs("auto", examples) == (epochs, True)


def test_epochs_out_of_range_are_refused():
    assert resolve_epochs("4", 100) == (4, False)
    with pytest.raises(EstimateError):
        resolve_epochs(0, 100)
    with pytest.raises(EstimateError):
        resolve_epochs("many", 100)


def test_flops_full_and_lora():
    assert training_flops(135_000_000, 1_000, "full") == 6 * 135e6 * 1000
    assert training_flops(135_000_000, 1_000, "lora") == 4 * 135e6 * 1000


@pytest.fixture
def fake_throughput(monkeypatch):
    """strop.train.throughput is written by the training engine; stand in for it here."""
    calls = []
    module = types.ModuleType("strop.train.throughput")

    def tokens_per_second(model, fine_tuning="lora", max_seq_length=512):
        calls.append((model, fine_tuning, max_seq_length))
        return 500.0

    module.tokens_per_second = tokens_per_second
    monkeypatch.setitem(sys.modules, "strop.train.throughput", module)
    return calls


def test_estimate_end_to_end_on_tiny_model(tiny_model_dir, fake_throughput):
    from strop.data import compute_stats, read_records
    from strop.models.registry import describe

    result = estimate(FIXTURES / "valid_chat.jsonl", model=str(tiny_model_dir))
    stats = compute_stats(read_records(FIXTURES / "valid_chat.jsonl"), _tokenizer(tiny_model_dir))
    assert result.examples == 12 and result.epochs == 9 and result.epochs_auto
    assert result.tokens_per_epoch == stats["tokens"]["total"]
    assert result.billed_tokens == 9 * stats["tokens"]["total"]
    nano = next(p for p in result.prices if p.label == "GPT-4.1 nano")
    assert nano.training_cost == pytest.approx(result.billed_tokens / 1e6 * 1.5)
    assert result.parameters == describe(str(tiny_model_dir))["parameters"]
    assert result.training_flops == 4 * result.parameters * result.billed_tokens
    assert result.wall_seconds == pytest.approx(result.billed_tokens / 500.0)
    p95 = stats["per_example"]["total"]["p95"]  # short examples: calibrated at 128, not 512
    assert 64 < p95 <= 128
    assert fake_throughput == [(str(tiny_model_dir), "lora", 128)]


def test_calibration_length_follows_the_data():
    from strop.estimate import calibration_length

    assert calibration_length(10, 2048) == 64
    assert calibration_length(300, 2048) == 512
    assert calibration_length(5000, 2048) == 2048
    assert calibration_length(700, 600) == 600


def test_estimate_refuses_invalid_file(tiny_model_dir, fake_throughput):
    from strop.data.records import DataFileError

    with pytest.raises(DataFileError, match="Line 5"):
        estimate(FIXTURES / "unknown_role.jsonl", model=str(tiny_model_dir))


def test_estimate_without_calibration_says_so(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "strop.train.throughput", None)  # import fails
    result = estimate(FIXTURES / "valid_chat.jsonl", model=str(tiny_model_dir), epochs=2,
                      fine_tuning="full")
    assert result.wall_seconds is None and "unavailable" in result.wall_note
    assert result.training_flops == 6 * result.parameters * result.billed_tokens


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def _tool_chat(index: int) -> dict:
    city = ["Paris", "Oslo", "Lima"][index % 3]
    call = {"id": f"call_{index}", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
    return {"tools": [WEATHER_TOOL], "messages": [
        {"role": "system", "content": "You are a helpful AI assistant."},
        {"role": "user", "content": f"What is the weather in {city}?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"call_{index}", "content": "sunny, 21 C"},
        {"role": "assistant", "content": f"It is sunny in {city}, 21 degrees."}]}


def test_estimate_counts_the_tokens_training_reports_tool_calls_included(tmp_path,
                                                                          tiny_model_dir):
    """`strop estimate` and the training run count the same tokens: the estimate's billed
    tokens are the run's trained_tokens (OpenAI's name for the tokens a job processed), and its
    trained tokens are the ones the run computes loss on."""
    from typer.testing import CliRunner

    from strop.cli import app
    from strop.train import Hyperparameters, TrainConfig, run_training
    from strop.train.records import read_jsonl, tokenize_records

    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(_tool_chat(i)) + "\n" for i in range(12)))
    fake = types.ModuleType("strop.train.throughput")
    fake.tokens_per_second = lambda model, fine_tuning="lora", max_seq_length=512: 500.0
    with pytest.MonkeyPatch.context() as patch:  # calibration stands in only for the estimate
        patch.setitem(sys.modules, "strop.train.throughput", fake)
        shown = CliRunner().invoke(app, ["estimate", str(path), "--model", str(tiny_model_dir),
                                         "--epochs", "1", "--json"])
    assert shown.exit_code == 0, shown.output
    estimated = json.loads(shown.stdout)

    result = run_training(TrainConfig(
        model=str(tiny_model_dir), training_file=path, output_dir=tmp_path / "out",
        validation_split=0, hyperparameters=Hyperparameters(n_epochs=1, batch_size=4)))
    assert result.status == "succeeded"
    assert estimated["billed_tokens"] == estimated["tokens_per_epoch"] == result.trained_tokens

    tokenizer = _tokenizer(tiny_model_dir)
    examples = tokenize_records(read_jsonl(path), tokenizer, "supervised", path.name)
    assert estimated["trained_tokens_per_epoch"] == sum(sum(e.trained) for e in examples)
    # the tool calls are in both counts: the trained text holds each call's arguments
    trained_text = tokenizer.decode([t for e in examples
                                     for t, on in zip(e.input_ids, e.trained) if on])
    assert trained_text.count('"get_weather"') == 12 and '{\\"city\\": \\"Oslo\\"}' in trained_text
