-- The embedded rating store (storage_mode: sqlite): one row per user and movie
-- (the latest rating), exact feature accumulators, and consumer progress.
CREATE TABLE IF NOT EXISTS ratings (
    user_id INTEGER NOT NULL,
    movie_id INTEGER NOT NULL,
    rating_half INTEGER NOT NULL CHECK (rating_half BETWEEN 1 AND 10),
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS movies (
    movie_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    genres TEXT NOT NULL,
    year INTEGER NULL
);
CREATE TABLE IF NOT EXISTS user_features (
    user_id INTEGER PRIMARY KEY,
    rating_count INTEGER NOT NULL,
    sum_half INTEGER NOT NULL,
    sum_sq_quarter INTEGER NOT NULL,
    last_update_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS movie_features (
    movie_id INTEGER PRIMARY KEY,
    rating_count INTEGER NOT NULL,
    sum_half INTEGER NOT NULL,
    sum_sq_quarter INTEGER NOT NULL,
    last_update_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS consumer_offsets (
    topic TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition_id)
);
