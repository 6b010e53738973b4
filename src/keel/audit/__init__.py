"""The tamper-evident audit log."""

from keel.audit.log import GENESIS, AuditEvent, AuditLog, AuditRecord, VerifyReport

__all__ = ["GENESIS", "AuditEvent", "AuditLog", "AuditRecord", "VerifyReport"]
