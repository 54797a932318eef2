"""PNG charts for reports: base vs tuned per metric, and a job's loss curves.

Drawn with matplotlib's Agg backend, so they work on a headless server.
"""

from __future__ import annotations

import csv
from pathlib import Path

GROUP_TITLES = {"task": "Task (held-out data)", "retention": "Retention suite (score)",
                "hallucination": "Hallucination suite"}
BASE_COLOUR, TUNED_COLOUR, DROP_COLOUR = "#8c8c8c", "#1f77b4", "#d62728"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _error(estimate) -> tuple[float, float]:
    if estimate.value is None or estimate.low is None or estimate.high is None:
        return 0.0, 0.0
    return max(0.0, estimate.value - estimate.low), max(0.0, estimate.high - estimate.value)


def plot_comparison(result, path: str | Path) -> Path:
    """Base and tuned side by side for every metric, with 95% intervals as error bars.

    Loss has its own panel (it is not on a 0-1 scale); a metric whose drop is significant is
    labelled in red with a marker.
    """
    from strop.evaluate.compare import as_result

    result = as_result(result)
    panels: list[tuple[str, list]] = []
    for group in ("task", "retention", "hallucination"):
        scores = [c for c in result.group(group) if c.metric != "loss"
                  and c.base.value is not None]
        if scores:
            panels.append((GROUP_TITLES[group], scores))
    loss = result.get("task", "loss")
    if loss is not None and loss.base.value is not None:
        panels.append(("Task loss (lower is better)", [loss]))
    if not panels:
        raise ValueError("the evaluation has no metrics to draw")
    plt = _pyplot()
    heights = [max(1.6, 0.55 * len(metrics) + 0.9) for _, metrics in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, sum(heights)),
                                gridspec_kw={"height_ratios": heights}, squeeze=False)
    for axis, (title, metrics) in zip(axes[:, 0], panels):
        positions = list(range(len(metrics)))
        for offset, side, colour, label in ((-0.2, "base", BASE_COLOUR, result.base["name"]),
                                            (0.2, "tuned", TUNED_COLOUR,
                                             result.tuned["name"])):
            values = [getattr(c, side).value or 0.0 for c in metrics]
            errors = list(zip(*[_error(getattr(c, side)) for c in metrics]))
            axis.barh([p + offset for p in positions], values, height=0.38, color=colour,
                      xerr=errors, capsize=3, label=label, error_kw={"elinewidth": 1})
        labels = []
        for comparison in metrics:
            text = comparison.metric.replace("_", " ")
            if not comparison.higher_is_better:
                text += " (lower better)"
            if comparison.significant_drop:
                text = "\u25bc " + text
            labels.append(text)
        axis.set_yticks(positions, labels)
        for tick, comparison in zip(axis.get_yticklabels(), metrics):
            if comparison.significant_drop:
                tick.set_color(DROP_COLOUR)
        axis.invert_yaxis()
        axis.set_title(title, loc="left", fontsize=10)
        if metrics[0].metric != "loss":
            axis.set_xlim(0, 1.05)
        axis.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    figure.suptitle("Base vs tuned (bars: 95% intervals; \u25bc significant drop)", fontsize=11)
    figure.tight_layout()
    return _save(plt, figure, path)


def _save(plt, figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _number(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_results_csv(path: str | Path) -> list[dict]:
    """Rows of an OpenAI-style results file: step, train_loss, train_accuracy, valid_loss,
    valid_mean_token_accuracy (blank cells become None)."""
    path = Path(path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise ValueError(f"{path}: not a results CSV (no 'step' column in the header)")
        rows = []
        for number, row in enumerate(reader, start=2):
            step = _number(row.get("step"))
            if step is None:
                raise ValueError(f"{path} line {number}: 'step' is not a number")
            rows.append({key: _number(value) for key, value in row.items() if key})
    return rows


def plot_loss_curves(results_csv: str | Path, path: str | Path) -> Path:
    """Train and validation loss per step (validation drawn where it was measured)."""
    rows = read_results_csv(results_csv)
    if not rows:
        raise ValueError(f"{results_csv}: the results file has no rows")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4))
    for column, label, style in (("train_loss", "train loss", "-"),
                                 ("valid_loss", "validation loss", "o-")):
        points = [(row["step"], row[column]) for row in rows if row.get(column) is not None]
        if points:
            steps, values = zip(*points)
            axis.plot(steps, values, style, label=label, markersize=4,
                      alpha=0.6 if column == "train_loss" else 1.0)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title("Training and validation loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return _save(plt, figure, path)
