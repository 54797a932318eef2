"""The base-vs-tuned evaluation table, one row per metric, as the model card, the Annex IV
document and `strop eval` all print it, so the three never disagree on a number's format."""

from __future__ import annotations

from strop.evaluate.compare import EvaluationResult

GROUP_NAMES = {"task": "Held-out task data", "retention": "Capability retention",
               "hallucination": "Hallucination"}


def format_estimate(estimate, digits: int = 3) -> str:
    """"0.812 [0.700, 0.900]"; a dash when there is no value."""
    if estimate is None or estimate.value is None:
        return "-"
    text = f"{estimate.value:.{digits}f}"
    if estimate.low is not None and estimate.high is not None:
        text += f" [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"
    return text


def format_delta(comparison) -> str:
    text = format_estimate(comparison.delta)
    if text != "-" and comparison.delta.value is not None and comparison.delta.value > 0:
        text = "+" + text
    if comparison.significant_drop:
        text += " (significant drop)"
    elif comparison.significant_gain:
        text += " (significant gain)"
    return text


def evaluation_rows(result: EvaluationResult) -> list[list[str]]:
    rows = []
    for comparison in result.comparisons:
        name = comparison.metric.replace("_", " ")
        if not comparison.higher_is_better:
            name += " (lower is better)"
        rows.append([GROUP_NAMES.get(comparison.group, comparison.group), name,
                     format_estimate(comparison.base), format_estimate(comparison.tuned),
                     format_delta(comparison),
                     format_estimate(comparison.retention) if comparison.retention else "-",
                     str(comparison.tuned.n)])
    return rows


EVALUATION_HEADER = ["Group", "Metric", "Base [95% CI]", "Tuned [95% CI]",
                     "Delta tuned-base [95% CI]", "Retention tuned/base [95% CI]", "n"]
