"""Data toolkit: formats, validation, statistics, deduplication, PII redaction, split."""

from strop.data.report import Problem, ValidationReport

__all__ = ["Problem", "ValidationReport"]
