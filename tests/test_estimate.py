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
