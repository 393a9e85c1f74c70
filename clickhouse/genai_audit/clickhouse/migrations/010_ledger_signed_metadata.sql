-- Signed leaf metadata (docs/ledger.md, "Threat model"). Each checkpoint note now signs, in
-- an extension line, a hash of what its row lists per added leaf: record_ids, record_expires
-- (8-byte unix seconds when retention may drop the row, 0 never) and, new here,
-- record_events (8-byte signed microseconds of the row's time column: event_timestamp,
-- erased_at, accessed_at), so verify can decide from signed data alone whether a missing
-- row had expired and whether a legal hold covered it.
-- Rows with source_table = 'ledger' are each writer session's log of logs: one leaf per
-- checkpoint the session signed; their record_ids hold the entries (log id, size, root).
ALTER TABLE ledger_checkpoints ADD COLUMN IF NOT EXISTS record_events String DEFAULT '' AFTER record_expires
