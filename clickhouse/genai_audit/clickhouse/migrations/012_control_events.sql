-- Control events (issue 15): what the store's owner ran in the background, and what failed.
-- One row per maintenance pass (ok or not) and one per ledger checkpoint the owner could not
-- store. Append-only. `at` is the owner's application clock (genai_audit.clock), so a
-- simulated year lands in its simulated months. `detail` holds step names, error codes and
-- counts only: never record content. The report's control-failures section counts the rows
-- with ok = false next to the per-record flags of audit_control_failures.
CREATE TABLE IF NOT EXISTS control_events (
    at DateTime64(6, 'UTC'),
    kind LowCardinality(String),
    ok Bool,
    detail String,
    writer_id String
)
ENGINE = MergeTree
ORDER BY (at, kind)
