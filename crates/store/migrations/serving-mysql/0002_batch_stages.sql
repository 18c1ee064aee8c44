-- Per-stage records of each batch run (JSON: name, rows, ms, detail), for `batch runs`.
ALTER TABLE app_batchrun ADD COLUMN stages TEXT NULL;
