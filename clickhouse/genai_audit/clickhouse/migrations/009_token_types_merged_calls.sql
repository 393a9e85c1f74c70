-- Token types the price table prices apart, and which instrumentations a row came from
-- (issue 19). Rows written before keep their leaf version (2) and these columns' defaults;
-- leaf version 3 (ledger/leaf.py) covers them.
--   cache_write_tokens: input tokens written to the provider's prompt cache
--   reasoning_tokens:   output tokens spent on reasoning (counted within response_tokens)
--   producers:          instrumentation scope names of the span(s) the row was built from
--   merged_span_ids:    the other spans of the same LLM call folded into this row
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS cache_write_tokens UInt32 DEFAULT 0 AFTER cached_tokens;
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS reasoning_tokens UInt32 DEFAULT 0 AFTER cache_write_tokens;
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS producers Array(LowCardinality(String)) AFTER flags;
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS merged_span_ids Array(String) AFTER producers
