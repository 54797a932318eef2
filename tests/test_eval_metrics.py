"""Metrics, intervals, suites and charts on fixtures whose answers are known."""

from __future__ import annotations

import json

import pytest

from strop.evaluate import scoring, stats
from strop.evaluate.compare import Comparison, EvaluationResult, load_task_examples
from strop.evaluate.suite import SuiteError, load_suite, stratified_sample


# --- intervals ------------------------------------------------------------------------------

def test_wilson_interval_matches_published_values():
    half = stats.wilson(5, 10)
    assert half.value == 0.5
    assert half.low == pytest.approx(0.2366, abs=1e-4)
    assert half.high == pytest.approx(0.7634, abs=1e-4)
    none = stats.wilson(0, 10)
    assert none.low == 0 and none.high == pytest.approx(0.2775, abs=1e-4)
    assert stats.wilson(0, 0).value is None


def test_proportion_rejects_graded_scores():
    with pytest.raises(ValueError, match="0/1"):
        stats.proportion([0.5, 1.0])


def test_bootstrap_mean_is_deterministic_and_close_to_the_normal_interval():
    values = list(range(100))
    first, second = stats.mean(values), stats.mean(values)
    assert first == second
    standard_error = 28.866 / 10
    assert first.value == 49.5
    assert first.low == pytest.approx(49.5 - 1.96 * standard_error, abs=1.0)
    assert first.high == pytest.approx(49.5 + 1.96 * standard_error, abs=1.0)


def test_paired_delta_and_ratio():
    identical = stats.paired_delta([1, 0, 1, 1], [1, 0, 1, 1])
    assert identical.value == 0 and identical.low == 0 and identical.high == 0
    drop = stats.paired_delta([1.0] * 30, [0.0] * 30)
    assert drop.value == -1 and drop.high == -1
    mixed = stats.paired_delta([1.0] * 20 + [0.0] * 20, [1.0] * 10 + [0.0] * 30)
    assert mixed.value == pytest.approx(-0.25)
    assert mixed.low < -0.25 < mixed.high < 0
    retention = stats.paired_ratio([1.0] * 20 + [0.0] * 20, [1.0] * 10 + [0.0] * 30)
    assert retention.value == pytest.approx(0.5)
    assert retention.low < 0.5 < retention.high
    assert stats.paired_ratio([0, 0], [1, 1]).value is None  # nothing to retain
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_delta([1, 0], [1])


def test_ratio_of_sums_weights_by_tokens():
    estimate = stats.ratio_of_sums([10.0, 2.0], [10, 2])
    assert estimate.value == 1.0
    delta = stats.paired_ratio_of_sums_delta([10.0, 4.0], [5.0, 2.0], [10, 2], [10, 2])
    assert delta.value == pytest.approx(7 / 12 - 14 / 12)


def test_significance_flags_follow_the_metric_direction():
    worse = stats.Estimate(-0.3, -0.5, -0.1, 30, "paired-bootstrap")
    higher = stats.Estimate(0.3, 0.1, 0.5, 30, "paired-bootstrap")
    unclear = stats.Estimate(-0.1, -0.3, 0.1, 30, "paired-bootstrap")
    base = tuned = stats.wilson(10, 30)
    assert Comparison("retention", "safety", True, base, tuned, worse).significant_drop
    assert not Comparison("retention", "safety", True, base, tuned, unclear).significant_drop
    hallucination_up = Comparison("hallucination", "hallucination_rate", False, base, tuned,
                                  higher)
    assert hallucination_up.significant_drop and not hallucination_up.significant_gain
    assert Comparison("task", "loss", False, base, tuned, worse).significant_gain


# --- scoring --------------------------------------------------------------------------------

def test_exact_match_and_answer_matching():
    assert scoring.exact_match("The Paris.", "paris")
    assert not scoring.exact_match("Paris, France", "Paris")
    assert scoring.contains_answer("7 plus 5 is 12.", ["12"])
    assert not scoring.contains_answer("It is 112.", ["12"])
    assert scoring.contains_answer("It's Buenos Aires!", ["Buenos Aires"])


def test_rouge_l_known_value():
    assert scoring.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert scoring.rouge_l("", "anything") == 0


def test_json_shape_needs_the_reference_keys():
    reference = scoring.json_reference('{"answer": "yes", "confidence": 0.9}')
    assert scoring.same_json_shape('```json\n{"confidence": 1, "answer": "no"}\n```', reference)
    assert not scoring.same_json_shape('{"answer": "no"}', reference)
    assert not scoring.same_json_shape("answer: no", reference)
    assert scoring.json_reference("plain text") is None


@pytest.mark.parametrize("text,refusal", [
    ("I'm sorry, but I can't help with that.", True),
    ("I cannot provide instructions for that.", True),
    ("As an AI, I must decline.", True),
    ("That would be illegal and dangerous; please contact the police.", True),
    ("Sure! Step one: gather the materials.", False),
    ("", False),
])
def test_refusal_detection(text, refusal):
    assert scoring.is_refusal(text) is refusal


@pytest.mark.parametrize("text,abstains", [
    ("I don't know what you ate.", True),
    ("Einstein never won the Nobel Prize in Literature.", True),
    ("There is no such country as Atlantis; it is fictional.", True),
    ("It is impossible to predict the lottery.", True),
    ("He won it in 1921.", False),
    ("The capital of Atlantis is Poseidonia.", False),
])
def test_abstention_detection(text, abstains):
    assert scoring.is_abstention(text) is abstains


@pytest.mark.parametrize("rule,good,bad", [
    ({"type": "lowercase"}, "all quiet here", "Not quiet"),
    ({"type": "uppercase"}, "LOUD NOISE", "Loud"),
    ({"type": "max_words", "value": 3}, "one two three", "one two three four"),
    ({"type": "min_words", "value": 3}, "one two three", "one two"),
    ({"type": "exact_words", "value": 1}, "Blue.", "Deep blue"),
    ({"type": "contains", "value": ["blue"]}, "The blue sea", "The bluest sea"),
    ({"type": "not_contains", "value": ["sun"]}, "Cloudy", "Sunny sun"),
    ({"type": "starts_with", "value": "Yes"}, "Yes, it is", "Well, yes"),
    ({"type": "ends_with", "value": "done"}, "All good. Done", "done already"),
    ({"type": "no_commas"}, "No commas here", "One, two"),
    ({"type": "json_keys", "value": ["topic"]}, '{"topic": "x", "more": 1}', '{"other": 1}'),
    ({"type": "bullets", "value": 2}, "- a\n- b", "- a\n- b\n- c"),
    ({"type": "max_sentences", "value": 1}, "One sentence.", "One. Two."),
    ({"type": "quoted"}, '"Quoted words"', 'Not "quoted"'),
    ({"type": "one_of", "value": ["yes", "no"]}, "Yes.", "Maybe"),
    ({"type": "number_only"}, "42", "42 apples"),
])
def test_instruction_rules(rule, good, bad):
    assert scoring.follows_instructions(good, [rule])
    assert not scoring.follows_instructions(bad, [rule])


# --- suites and held-out data ---------------------------------------------------------------

def test_shipped_suites_are_well_formed_and_balanced():
    retention = load_suite("retention")
    hallucination = load_suite("hallucination")
    areas = {item.area for item in retention}
    assert areas == {"instruction_following", "knowledge", "arithmetic", "safety"}
    assert 200 <= len(retention) <= 400
    assert {item.kind for item in hallucination} == {"answerable", "unanswerable",
                                                     "false_premise"}
    sample = stratified_sample(retention, 20)
    assert len(sample) == 20
    assert {area: sum(item.area == area for item in sample) for area in areas} == {
        area: 5 for area in areas}
    assert stratified_sample(retention, 20) == sample


def test_shipped_arithmetic_answers_are_right():
    import re

    for item in load_suite("retention"):
        if item.area == "arithmetic":
            a, word, b = re.match(r"What is (\d+) (\w+) (\d+)\?", item.prompt).groups()
            expected = {"plus": int(a) + int(b), "minus": int(a) - int(b),
                        "times": int(a) * int(b)}[word]
            assert item.answers == (str(expected),)


def test_bad_suite_items_name_the_line(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"id": "a", "area": "x", "prompt": "p", "answers": ["1"]}\n'
                    '{"id": "b", "area": "x", "prompt": "p"}\n')
    with pytest.raises(SuiteError, match="suite.jsonl line 2: a retention item needs"):
        load_suite(path)
    path.write_text('{"id": "a", "kind": "guess", "prompt": "p"}\n')
    with pytest.raises(SuiteError, match="line 1: 'kind' must be one of"):
        load_suite(path)
    with pytest.raises(SuiteError, match="no suite 'nope'"):
        load_suite("nope")


def test_task_examples_use_the_last_assistant_message(tmp_path):
    path = tmp_path / "valid.jsonl"
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"},
                      {"role": "user", "content": "Capital of France?"},
                      {"role": "assistant", "content": "Paris"}]},
        {"messages": [{"role": "user", "content": "No answer here"}]},
        {"prompt": "2+2=", "completion": "4"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    examples, notes = load_task_examples(path)
    assert [example.reference for example in examples] == ["Paris", "4"]
    assert examples[0].prompt[-1] == {"role": "user", "content": "Capital of France?"}
    assert len(examples[0].prompt) == 4
    assert notes and "line" in notes[0] and "2" in notes[0]
    path.write_text("not json\n")
    with pytest.raises(SuiteError, match="valid.jsonl line 1"):
        load_task_examples(path)


# --- results and charts ---------------------------------------------------------------------

def _result() -> EvaluationResult:
    base = stats.proportion([1.0] * 18 + [0.0] * 2)
    tuned = stats.proportion([1.0] * 6 + [0.0] * 14)
    drop = stats.paired_delta([1.0] * 18 + [0.0] * 2, [1.0] * 6 + [0.0] * 14)
    loss = stats.Estimate(1.8, 1.6, 2.0, 20, "bootstrap")
    loss_tuned = stats.Estimate(1.1, 1.0, 1.2, 20, "bootstrap")
    loss_delta = stats.Estimate(-0.7, -0.8, -0.6, 20, "paired-bootstrap")
    return EvaluationResult(
        {"name": "base-model"}, {"name": "tuned-model"}, {"decoding": "greedy"},
        [Comparison("task", "loss", False, loss, loss_tuned, loss_delta),
         Comparison("retention", "safety", True, base, tuned, drop,
                    stats.paired_ratio([1.0] * 18 + [0.0] * 2, [1.0] * 6 + [0.0] * 14)),
         Comparison("hallucination", "hallucination_rate", False, tuned, tuned,
                    stats.paired_delta([0.0] * 20, [0.0] * 20))])


def test_result_round_trips_through_json():
    result = _result()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["significant_drops"] == ["retention/safety"]
    again = EvaluationResult.from_dict(data)
    assert again.get("retention", "safety").significant_drop
    assert again.get("task", "loss").significant_gain
    assert again.to_dict() == data


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_comparison_chart_is_written(tmp_path):
    from strop.evaluate import plot_comparison

    path = plot_comparison(_result().to_dict(), tmp_path / "charts" / "comparison.png")
    assert _is_png(path)


def test_loss_curves_chart_and_bad_results_file(tmp_path):
    from strop.evaluate import plot_loss_curves

    csv_path = tmp_path / "results.csv"
    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for step in range(1, 21):
        valid = f"{2.6 - step * 0.05:.3f}" if step % 5 == 0 else ""
        lines.append(f"{step},{2.5 - step * 0.06:.3f},0.5,{valid},")
    csv_path.write_text("\n".join(lines) + "\n")
    assert _is_png(plot_loss_curves(csv_path, tmp_path / "loss.png"))
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n1,2\n")
    with pytest.raises(ValueError, match="no 'step' column"):
        plot_loss_curves(bad, tmp_path / "bad.png")
