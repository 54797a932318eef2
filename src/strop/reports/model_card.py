"""A model card per tuned model, in Hugging Face's format (YAML metadata, then Markdown).

The card describes the training data by hashes, counts and findings, never by content: the data
is the customer's and often holds personal information.
"""

from __future__ import annotations

from pathlib import Path

from strop.evaluate.compare import EvaluationResult, as_result
from strop.reports.evaluation_table import EVALUATION_HEADER, evaluation_rows


def _metadata(manifest: dict, result: EvaluationResult | None, name: str) -> dict:
    datasets = [f"sha256:{digest}" for digest in (manifest.get("training_file_sha256"),
                                                  manifest.get("validation_file_sha256"))
                if digest]
    metadata: dict = {
        "base_model": manifest.get("base_model"),
        "library_name": "peft" if manifest.get("fine_tuning") == "lora" else "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["strop", "fine-tuned", str(manifest.get("fine_tuning") or "unknown"),
                 str(manifest.get("method") or "supervised")],
        "datasets": datasets,
    }
    if result is not None:
        metrics = []
        for comparison in result.comparisons:
            if comparison.tuned.value is None:
                continue
            entry = {"type": f"{comparison.group}/{comparison.metric}",
                     "name": f"{comparison.group} {comparison.metric.replace('_', ' ')}",
                     "value": round(comparison.tuned.value, 4)}
            if comparison.tuned.low is not None:
                entry["args"] = {"ci95_low": round(comparison.tuned.low, 4),
                                 "ci95_high": round(comparison.tuned.high, 4),
                                 "base_value": None if comparison.base.value is None
                                 else round(comparison.base.value, 4)}
            metrics.append(entry)
        metadata["model-index"] = [{
            "name": name,
            "results": [{"task": {"type": "text-generation"},
                         "dataset": {"name": "strop held-out data and suites",
                                     "type": datasets[-1] if datasets else "strop-suites"},
                         "metrics": metrics}],
        }]
    return metadata


def _number(value, unit: str = "") -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    if isinstance(value, float):
        return f"{value:.4g}{unit}"
    return f"{value}{unit}"


def model_card_markdown(manifest: dict, evaluation=None, data_summary: dict | None = None,
                        name: str | None = None) -> str:
    import yaml

    result = as_result(evaluation)
    name = name or manifest.get("fine_tuned_model") or "tuned model"
    hyperparameters = manifest.get("hyperparameters") or {}
    config = manifest.get("config") or {}
    lines = ["---", yaml.safe_dump(_metadata(manifest, result, name), sort_keys=False).rstrip(),
             "---", "", f"# {name}", "",
             f"A {manifest.get('fine_tuning', '')} fine-tune ({manifest.get('method', '')}) of "
             f"`{manifest.get('base_model')}`, trained with strop.", "",
             "## Intended use", "",
             "Built for the task its training data demonstrates, by the organisation that "
             "supplied that data. It inherits the base model's licence, languages and "
             "limitations. It is not evaluated for high-stakes decisions about people (credit, "
             "employment, health, law enforcement); such use needs its own assessment.", "",
             "## Training data", "",
             "Described by hashes and counts only; the content is not reproduced here.", "",
             f"- Training file sha256: `{manifest.get('training_file_sha256')}` "
             f"({manifest.get('n_train_examples', '?')} examples)",
             f"- Validation: " + (f"file sha256 `{manifest['validation_file_sha256']}`"
                                  if manifest.get("validation_file_sha256")
                                  else "held out from the training file")
             + f" ({manifest.get('n_validation_examples', '?')} examples)"]
    if data_summary:
        for key, value in data_summary.items():
            if key in ("pii_counts", "pii_findings") and isinstance(value, dict):
                counts = ", ".join(f"{kind}: {count}" for kind, count in sorted(value.items()))
                lines.append(f"- PII found and handled, by type (counts only): {counts or 'none'}")
            elif not isinstance(value, (dict, list)):
                lines.append(f"- {key.replace('_', ' ')}: {value}")
    lines += ["", "## Training procedure and compute", "",
              f"- Method: {manifest.get('method')}, {manifest.get('fine_tuning')}, precision "
              f"{manifest.get('precision')}, seed {manifest.get('seed')}",
              f"- Hyperparameters: " + ", ".join(f"{key}={value}" for key, value in
                                                  hyperparameters.items())]
    if manifest.get("fine_tuning") == "lora":
        lines.append(f"- LoRA: rank {config.get('lora_rank')}, alpha {config.get('lora_alpha')}, "
                     f"dropout {config.get('lora_dropout')}, targets "
                     f"{config.get('lora_target_modules')}")
    lines += [f"- Steps: {manifest.get('steps')}; trained tokens: "
              f"{_number(manifest.get('trained_tokens'))}",
              f"- Compute: {_number(manifest.get('flops'))} FLOPs (estimated), wall time "
              f"{_number(manifest.get('wall_time_seconds'), ' s')}, hardware: "
              f"{manifest.get('hardware') or 'not recorded in the manifest'}",
              f"- Base weights sha256: `{manifest.get('base_model_weights_sha256')}`",
              "- Versions: " + ", ".join(f"{package} {version}" for package, version in
                                         (manifest.get("versions") or {}).items()),
              "", "## Evaluation", ""]
    if result is None:
        lines += ["Not evaluated yet: run `strop eval` on this model.", ""]
    else:
        settings = result.settings
        lines += [f"Base and tuned model answered the same items with greedy decoding "
                  f"(at most {settings.get('max_new_tokens')} new tokens). Intervals are 95% "
                  "(Wilson for proportions, paired bootstrap for differences).", "",
                  "| " + " | ".join(EVALUATION_HEADER) + " |",
                  "|" + "|".join("---" for _ in EVALUATION_HEADER) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in evaluation_rows(result)]
        lines.append("")
    lines += ["## Limitations", "",
              "- A fine-tune can lose capabilities and safety behaviour of its base model; the "
              "retention and hallucination numbers above measure that on small, judge-free "
              "suites scored by patterns, which approximate but do not replace human review.",
              "- Behaviour outside the distribution of the training data is untested.",
              "- Small evaluation sets give wide intervals; a difference without a "
              "\"significant\" mark may still be real, and with many metrics one can be "
              "flagged by chance.", ""]
    drops = result.significant_drops if result is not None else []
    if drops:
        lines += ["**Significant drops versus the base model:** "
                  + ", ".join(f"{c.group}/{c.metric}" for c in drops) + ".", ""]
    return "\n".join(lines)


def write_model_card(path: str | Path, manifest: dict, evaluation=None,
                     data_summary: dict | None = None, name: str | None = None) -> Path:
    """Write README.md-style model card to `path` (a file, or a folder to put README.md in)."""
    path = Path(path)
    if path.is_dir():
        path = path / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_card_markdown(manifest, evaluation, data_summary, name),
                    encoding="utf-8")
    return path
