"""The auditor's package for one tuned model: technical documentation (Markdown, HTML, charts)
and model card, from its training manifest, stored evaluation, data report and audit records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from strop.reports.annex_iv import write_technical_report
from strop.reports.lineage import related_records
from strop.reports.model_card import write_model_card
from strop.store.served import locate


class ReportError(ValueError):
    """A model that cannot be reported on; the message says what is missing."""


@dataclass
class AuditorPackage:
    markdown: Path
    html: Path
    model_card: Path
    evaluated: bool  # False when no evaluation was found (sections say so)


def write_auditor_package(settings, model: str, out: str | Path,
                          evaluation: str | Path | None = None,
                          data_report: str | Path | None = None,
                          actor: str = "cli") -> AuditorPackage:
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
    records = related_records(seeds, log.records())
    markdown_path, html_path = write_technical_report(out, model, manifest, stored, records,
                                                      log.verify(), data_report=data)
    card = write_model_card(Path(out) / "README.md", manifest, stored, data, name=model)
    log.append("model.reported", actor=actor, objects={"model": model},
               details={"output": str(out)})
    return AuditorPackage(Path(markdown_path), Path(html_path), Path(card), stored is not None)
