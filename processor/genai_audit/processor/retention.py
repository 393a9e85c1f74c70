"""Stamp each record with its retention period (days), which the table's TTL enforces."""

from __future__ import annotations

from collections.abc import Sequence

from genai_audit.processor.record import AuditRecord, Flag


class RetentionStage:
    name = "retention"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, default_days: int) -> None:
        self.default_days = default_days

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            record.retention_days = self.default_days
