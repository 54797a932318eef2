"""The auditor's package for one tuned model: technical report (Markdown, HTML, charts) and
model card, from its training manifest, stored evaluation, data report and audit records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from strop import audit
from strop.store.served import locate


class ReportError(ValueError):
    """A model that cannot be reported on; the message says what is missing."""


@dataclass
class ModelReport:
    markdown: Path
    html: Path
    model_card: Path
    evaluated: bool  # False when no evaluation was found (sections say so)


def write_model_report(settings, model: str, out: str | Path,
                       evaluation: str | Path | None = None,
                       data_report: str | Path | None = None, actor: str = "cli") -> ModelReport:
    """`model` is an ft: name, a job output folder or an adapter folder."""
    paths = locate(model, settings)
    manifest = paths.manifest()
    if manifest is None:
        raise ReportError(f"no manifest.json above {paths.model_dir}: the report needs the "
                          "training manifest a strop run writes")
    evaluation_path = Path(evaluation) if evaluation else paths.evaluation_path
    stored = json.loads(evaluation_path.read_text()) if evaluation_path.is_file() else None
    data = json.loads(Path(data_report).read_text()) if data_report else None
    seeds = [model, str(paths.model_dir)] + ([paths.job_id] if paths.job_id else [])
    log = settings.audit_log
    records = audit.related_records(seeds, log.records())
    markdown_path, html_path = audit.write_report(out, model, manifest, stored, records,
                                                  log.verify(), data_report=data)
    card = audit.write_model_card(Path(out) / "README.md", manifest, stored, data, name=model)
    log.append("model.reported", actor=actor, objects={"model": model},
                 details={"output": str(out)})
    return ModelReport(Path(markdown_path), Path(html_path), Path(card), stored is not None)
