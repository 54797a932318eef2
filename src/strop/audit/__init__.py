"""Audit trail, lineage, model cards and technical reports.

`AuditLog` (from `Settings.audit_log`) is what every state change appends to; `verify` proves
the log intact; `records` reads it.
Model cards and reports pull in the evaluation and plotting code, so they load on first use.
"""

from strop.audit.lineage import lineage, related_records
from strop.audit.log import AuditError, AuditLog, read_records, record_hash, records
from strop.audit.verify import VerifyResult, verify


def write_model_card(path, manifest, evaluation=None, data_summary=None, name=None):
    """Hugging Face model card (YAML metadata + Markdown); see strop.audit.model_card."""
    from strop.audit.model_card import write_model_card as write

    return write(path, manifest, evaluation, data_summary, name)


def write_report(out_dir, model_name, manifest, evaluation, audit_records, audit_status,
                 data_report=None, results_csv=None):
    """Technical report (Markdown + HTML + charts) after EU AI Act Annex IV; returns
    (markdown_path, html_path). See strop.audit.report."""
    from strop.audit.report import write_report as write

    return write(out_dir, model_name, manifest, evaluation, audit_records, audit_status,
                 data_report, results_csv)


__all__ = ["AuditError", "AuditLog", "VerifyResult", "lineage", "read_records", "record_hash",
           "records", "related_records", "verify", "write_model_card", "write_report"]
