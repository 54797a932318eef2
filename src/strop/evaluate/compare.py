"""Base versus tuned: task metrics on held-out data, capability retention, hallucination delta.

Both models see the same items with the same greedy decoding and token budgets. Every number
carries a 95% interval; every difference is computed per item and bootstrapped in pairs; a
comparison is flagged `significant_drop` when the tuned model is worse and the interval of the
difference excludes zero (worse means lower for scores, higher for loss and hallucination rate).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from strop.evaluate import scoring, stats
from strop.evaluate.backends import base_and_tuned
from strop.evaluate.suite import Item, SuiteError, load_suite, stratified_sample
from strop.evaluate.stats import Estimate

RESULT_VERSION = 1


@dataclass
class Comparison:
    group: str  # "task", "retention", "hallucination"
    metric: str
    higher_is_better: bool
    base: Estimate
    tuned: Estimate
    delta: Estimate  # tuned - base, paired
    retention: Estimate | None = None  # tuned / base, paired (retention areas only)

    @property
    def significant_drop(self) -> bool:
        """The tuned model is significantly worse (a rise, for lower-is-better metrics)."""
        if self.delta.low is None or self.delta.high is None:
            return False
        return self.delta.high < 0 if self.higher_is_better else self.delta.low > 0

    @property
    def significant_gain(self) -> bool:
        if self.delta.low is None or self.delta.high is None:
            return False
        return self.delta.low > 0 if self.higher_is_better else self.delta.high < 0

    def to_dict(self) -> dict:
        return {
            "group": self.group, "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "base": self.base.to_dict(), "tuned": self.tuned.to_dict(),
            "delta": self.delta.to_dict(),
            "retention": self.retention.to_dict() if self.retention else None,
            "significant_drop": self.significant_drop,
            "significant_gain": self.significant_gain,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        def estimate(value):
            return Estimate(**value) if value else None

        return cls(data["group"], data["metric"], data["higher_is_better"],
                   estimate(data["base"]), estimate(data["tuned"]), estimate(data["delta"]),
                   estimate(data.get("retention")))


@dataclass
class EvaluationResult:
    base: dict
    tuned: dict
    settings: dict
    comparisons: list[Comparison] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)  # per-item outputs and scores
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def get(self, group: str, metric: str) -> Comparison | None:
        for comparison in self.comparisons:
            if comparison.group == group and comparison.metric == metric:
                return comparison
        return None

    def group(self, name: str) -> list[Comparison]:
        return [comparison for comparison in self.comparisons if comparison.group == name]

    @property
    def significant_drops(self) -> list[Comparison]:
        return [comparison for comparison in self.comparisons if comparison.significant_drop]

    def to_dict(self) -> dict:
        return {
            "object": "evaluation", "version": RESULT_VERSION,
            "base": self.base, "tuned": self.tuned, "settings": self.settings,
            "seconds": round(self.seconds, 3),
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
            "significant_drops": [f"{c.group}/{c.metric}" for c in self.significant_drops],
            "notes": list(self.notes), "items": self.items,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "EvaluationResult":
        return cls(data["base"], data["tuned"], data["settings"],
                   [Comparison.from_dict(entry) for entry in data["comparisons"]],
                   data.get("items", []), data.get("notes", []), data.get("seconds", 0.0))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def as_result(evaluation) -> EvaluationResult | None:
    """Accept an EvaluationResult, its `to_dict()` form, or None."""
    if evaluation is None or isinstance(evaluation, EvaluationResult):
        return evaluation
    return EvaluationResult.from_dict(evaluation)


# --- held-out task data ---------------------------------------------------------------------

@dataclass
class TaskExample:
    line: int
    prompt: list[dict]
    reference: str


def load_task_examples(path: str | Path) -> tuple[list[TaskExample], list[str]]:
    """Chat examples split into prompt and reference (the last assistant message).

    Prompt/completion examples become a user turn and its answer. Lines that have no
    assistant text to compare against are skipped and reported in the notes.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"evaluation data '{path}' does not exist")
    examples, notes, skipped = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SuiteError(f"{path.name} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise SuiteError(f"{path.name} line {number}: expected a JSON object")
        if "messages" in record:
            messages = record["messages"]
            if not isinstance(messages, list):
                raise SuiteError(f"{path.name} line {number}: 'messages' must be a list")
            last = max((index for index, message in enumerate(messages)
                        if isinstance(message, dict) and message.get("role") == "assistant"
                        and isinstance(message.get("content"), str)
                        and message["content"].strip()), default=None)
            if last is None:
                skipped.append(number)
                continue
            prompt = [{"role": m["role"], "content": m.get("content") or ""}
                      for m in messages[:last]]
            examples.append(TaskExample(number, prompt, messages[last]["content"]))
        elif "prompt" in record and "completion" in record:
            examples.append(TaskExample(number, [{"role": "user", "content": str(
                record["prompt"])}], str(record["completion"])))
        else:
            raise SuiteError(f"{path.name} line {number}: expected chat 'messages' or "
                             "'prompt'/'completion'")
    if skipped:
        notes.append(f"{len(skipped)} example(s) without assistant text skipped (lines "
                     f"{', '.join(map(str, skipped[:10]))}{'...' if len(skipped) > 10 else ''})")
    if not examples:
        raise SuiteError(f"{path}: no example has an assistant answer to compare against")
    return examples, notes


# --- scoring a run --------------------------------------------------------------------------

def _score_retention(item: Item, output: str) -> float:
    if item.answers:
        return float(scoring.contains_answer(output, list(item.answers)))
    if item.rules:
        return float(scoring.follows_instructions(output, list(item.rules)))
    return float(scoring.is_refusal(output))


def _score_hallucination(item: Item, output: str) -> dict:
    if item.kind == "answerable":
        correct = scoring.contains_answer(output, list(item.answers))
        abstained = not correct and scoring.is_abstention(output)
        return {"correct": float(correct), "abstained": float(abstained),
                "hallucinated": float(not correct and not abstained)}
    honest = scoring.is_abstention(output) or scoring.is_refusal(output)
    return {"abstained": float(honest), "hallucinated": float(not honest)}


def _compare_proportions(group, metric, base, tuned, higher_is_better=True,
                         with_retention=False) -> Comparison:
    return Comparison(
        group, metric, higher_is_better, stats.proportion(base), stats.proportion(tuned),
        stats.paired_delta(base, tuned),
        stats.paired_ratio(base, tuned) if with_retention else None)


def _task_comparisons(examples, base_out, tuned_out, base_refs, tuned_refs,
                      items: list[dict]) -> list[Comparison]:
    comparisons: list[Comparison] = []
    if base_refs is not None and tuned_refs is not None:
        tokens_b = [score.tokens for score in base_refs]
        tokens_t = [score.tokens for score in tuned_refs]
        for metric, attribute, higher in (("loss", "loss_sum", False),
                                          ("mean_token_accuracy", "correct", True)):
            top_b = [getattr(score, attribute) for score in base_refs]
            top_t = [getattr(score, attribute) for score in tuned_refs]
            comparisons.append(Comparison(
                "task", metric, higher, stats.ratio_of_sums(top_b, tokens_b),
                stats.ratio_of_sums(top_t, tokens_t),
                stats.paired_ratio_of_sums_delta(top_b, top_t, tokens_b, tokens_t)))
    exact_b = [float(scoring.exact_match(o, e.reference)) for o, e in zip(base_out, examples)]
    exact_t = [float(scoring.exact_match(o, e.reference)) for o, e in zip(tuned_out, examples)]
    comparisons.append(_compare_proportions("task", "exact_match", exact_b, exact_t))
    rouge_b = [scoring.rouge_l(o, e.reference) for o, e in zip(base_out, examples)]
    rouge_t = [scoring.rouge_l(o, e.reference) for o, e in zip(tuned_out, examples)]
    comparisons.append(Comparison("task", "rouge_l", True, stats.mean(rouge_b),
                                  stats.mean(rouge_t), stats.paired_delta(rouge_b, rouge_t)))
    json_refs = [scoring.json_reference(example.reference) for example in examples]
    json_rows = [index for index, value in enumerate(json_refs) if value is not None]
    format_b = format_t = None
    if json_rows:
        format_b = [float(scoring.same_json_shape(base_out[i], json_refs[i])) for i in json_rows]
        format_t = [float(scoring.same_json_shape(tuned_out[i], json_refs[i]))
                    for i in json_rows]
        comparisons.append(_compare_proportions("task", "format_adherence", format_b, format_t))
    # Held-out data is the customer's: keep scores per example, never its text.
    for index, example in enumerate(examples):
        row = {"suite": "task", "line": example.line,
               "base": {"exact_match": exact_b[index], "rouge_l": round(rouge_b[index], 4)},
               "tuned": {"exact_match": exact_t[index], "rouge_l": round(rouge_t[index], 4)}}
        if base_refs is not None and tuned_refs is not None:
            for side, refs in (("base", base_refs), ("tuned", tuned_refs)):
                row[side]["loss"] = round(refs[index].loss_sum / max(refs[index].tokens, 1), 4)
        items.append(row)
    return comparisons


def _retention_comparisons(chosen: list[Item], base_out, tuned_out,
                           items: list[dict]) -> list[Comparison]:
    areas: dict[str, tuple[list[float], list[float]]] = {}
    for item, b_text, t_text in zip(chosen, base_out, tuned_out):
        b, t = _score_retention(item, b_text), _score_retention(item, t_text)
        areas.setdefault(item.area, ([], []))
        areas[item.area][0].append(b)
        areas[item.area][1].append(t)
        items.append({"suite": "retention", "id": item.id, "area": item.area,
                      "prompt": item.prompt, "base_output": b_text[:500],
                      "tuned_output": t_text[:500], "base_score": b, "tuned_score": t})
    comparisons = [_compare_proportions("retention", area, b, t, with_retention=True)
                   for area, (b, t) in sorted(areas.items())]
    if len(areas) > 1:
        pooled_b = [score for b, _ in areas.values() for score in b]
        pooled_t = [score for _, t in areas.values() for score in t]
        comparisons.append(_compare_proportions("retention", "overall", pooled_b, pooled_t,
                                                with_retention=True))
    return comparisons


def _hallucination_comparisons(chosen: list[Item], base_out, tuned_out,
                               items: list[dict]) -> list[Comparison]:
    scored = []
    for item, b_text, t_text in zip(chosen, base_out, tuned_out):
        b, t = _score_hallucination(item, b_text), _score_hallucination(item, t_text)
        scored.append((item, b, t))
        items.append({"suite": "hallucination", "id": item.id, "kind": item.kind,
                      "prompt": item.prompt, "base_output": b_text[:500],
                      "tuned_output": t_text[:500], "base_score": b, "tuned_score": t})
    comparisons = [_compare_proportions(
        "hallucination", "hallucination_rate", [b["hallucinated"] for _, b, _ in scored],
        [t["hallucinated"] for _, _, t in scored], higher_is_better=False)]
    answerable = [(b, t) for item, b, t in scored if item.kind == "answerable"]
    if answerable:
        comparisons.append(_compare_proportions(
            "hallucination", "answerable_accuracy", [b["correct"] for b, _ in answerable],
            [t["correct"] for _, t in answerable]))
    unanswerable = [(b, t) for item, b, t in scored if item.kind != "answerable"]
    if unanswerable:
        comparisons.append(_compare_proportions(
            "hallucination", "abstention_when_unanswerable",
            [b["abstained"] for b, _ in unanswerable], [t["abstained"] for _, t in unanswerable]))
    return comparisons


# --- the entry point ------------------------------------------------------------------------

def evaluate_models(base, tuned, data_path: str | Path | None = None,
                    suites: Iterable[str | Path] = ("retention", "hallucination"),
                    max_new_tokens: int = 64, limit: int | None = None,
                    progress: Callable[[str], None] | None = None,
                    settings=None) -> EvaluationResult:
    """Evaluate `tuned` against `base` on held-out data and the suites.

    `base`/`tuned`: model names (ft: names, adapter or model folders, base model names),
    served by one strop.serving.Engine in the serving settings of `settings` (default
    `Settings.load()`), or backends from `strop.evaluate.backends` (`LocalModel` over an
    engine of your own, `EndpointModel`).
    `suites`: names of shipped suites or JSONL paths. `limit`: at most this many items per
    suite and held-out examples, sampled evenly across areas. `max_new_tokens` caps every
    item's own budget; a held-out example gets its reference length plus 16, within the cap.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    started = time.perf_counter()
    say = progress or (lambda message: None)
    base_backend, tuned_backend = base_and_tuned(base, tuned, settings)
    notes: list[str] = []

    examples: list[TaskExample] = []
    if data_path is not None:
        examples, data_notes = load_task_examples(data_path)
        notes += data_notes
        if limit is not None and len(examples) > limit:
            notes.append(f"held-out data limited to the first {limit} of {len(examples)} "
                         "examples")
            examples = examples[:limit]

    retention_items: list[Item] = []
    hallucination_items: list[Item] = []
    suite_names = []
    for suite in suites:
        chosen = stratified_sample(load_suite(suite), limit)
        suite_names.append(str(suite))
        retention_items += [item for item in chosen if item.area is not None]
        hallucination_items += [item for item in chosen if item.kind is not None]
    suite_items = retention_items + hallucination_items

    # One generation call per model over everything: the adapter is switched once per side.
    conversations = [example.prompt for example in examples]
    budgets = [_task_budget(tuned_backend, example, max_new_tokens) for example in examples]
    conversations += [item.messages() for item in suite_items]
    budgets += [min(item.max_new_tokens, max_new_tokens) for item in suite_items]
    long_references = sum(1 for example, budget in zip(examples, budgets)
                          if budget == max_new_tokens and _reference_length(
                              tuned_backend, example) + 1 > max_new_tokens)
    if long_references:
        notes.append(f"{long_references} reference answer(s) are longer than max_new_tokens="
                     f"{max_new_tokens}: exact match is impossible for them")

    outputs, reference_scores = {}, {}
    for side, backend in (("base", base_backend), ("tuned", tuned_backend)):
        say(f"{side}: generating {len(conversations)} answers")
        outputs[side] = backend.generate(conversations, budgets, progress=progress)
        reference_scores[side] = None
        if examples:
            reference_scores[side] = backend.reference_scores(
                [example.prompt for example in examples],
                [example.reference for example in examples], progress=progress)
    if examples and (reference_scores["base"] is None or reference_scores["tuned"] is None):
        notes.append("loss and token accuracy need local models; an endpoint gives text only")

    items: list[dict] = []
    comparisons: list[Comparison] = []
    n_task = len(examples)
    n_retention = len(retention_items)
    if examples:
        comparisons += _task_comparisons(
            examples, outputs["base"][:n_task], outputs["tuned"][:n_task],
            reference_scores["base"], reference_scores["tuned"], items)
    if retention_items:
        comparisons += _retention_comparisons(
            retention_items, outputs["base"][n_task:n_task + n_retention],
            outputs["tuned"][n_task:n_task + n_retention], items)
    if hallucination_items:
        comparisons += _hallucination_comparisons(
            hallucination_items, outputs["base"][n_task + n_retention:],
            outputs["tuned"][n_task + n_retention:], items)

    settings = {
        "decoding": "greedy", "max_new_tokens": max_new_tokens, "limit": limit,
        "suites": suite_names, "data": str(data_path) if data_path else None,
        "n_task_examples": n_task, "n_retention_items": n_retention,
        "n_hallucination_items": len(hallucination_items), "confidence": stats.CONFIDENCE,
        "bootstrap_samples": stats.BOOTSTRAP_SAMPLES, "bootstrap_seed": stats.SEED,
    }
    result = EvaluationResult(base_backend.describe(), tuned_backend.describe(), settings,
                              comparisons, items, notes, time.perf_counter() - started)
    say(f"evaluation done in {result.seconds:.1f} s")
    return result


def _reference_length(backend, example: TaskExample) -> int:
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        return max(1, len(example.reference) // 4)  # endpoints: a rough characters-per-token
    return len(tokenizer(example.reference, add_special_tokens=False)["input_ids"])


def _task_budget(backend, example: TaskExample, cap: int) -> int:
    return min(cap, _reference_length(backend, example) + 16)
