"""Processor side: span -> AuditRecord, the record stages and the span processor."""
