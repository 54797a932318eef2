"""The audit trail: `AuditLog` (from `Settings.audit_log`) is what every state change appends
to; `verify` proves the log intact; `records` reads it. Reports built from it live in
`strop.reports`.
"""

from strop.audit.log import AuditError, AuditLog, read_records, record_hash, records
from strop.audit.verify import VerifyResult, verify

__all__ = ["AuditError", "AuditLog", "VerifyResult", "read_records", "record_hash", "records",
           "verify"]
