"""Audit trail, lineage, model cards and technical reports.

`append` is what every state change calls; `verify` proves the log intact; `records` reads it.
"""

from strop.audit.log import (
    AuditError,
    VerifyResult,
    append,
    log_path,
    read_records,
    record_hash,
    records,
    verify,
)

__all__ = ["AuditError", "VerifyResult", "append", "log_path", "read_records", "record_hash",
           "records", "verify"]
