-- The change log of the feature tables (the warehouse export's source in SQL
-- mode, as DynamoDB Streams is in aws mode). Rows are written by triggers,
-- created when the export is first used (`enable_change_log`), so a store
-- that never exports pays nothing. AUTOINCREMENT: a sequence number is never
-- reused after the exporter drops what it has written, so it orders a row's
-- changes for ever.
CREATE TABLE IF NOT EXISTS feature_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    key INTEGER NOT NULL,
    op TEXT NOT NULL,
    rating_count INTEGER,
    sum_half INTEGER,
    sum_sq_quarter INTEGER,
    last_update_ms INTEGER
);
