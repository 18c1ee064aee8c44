-- The seed's Django tables (app_movie, app_recommendationdata) with wider
-- numeric types (exact scores, 64-bit ids), plus what the API serves beside them.
CREATE TABLE IF NOT EXISTS app_movie (
    id BIGSERIAL PRIMARY KEY,
    movie_id BIGINT NOT NULL UNIQUE,
    title VARCHAR(500) NOT NULL,
    genres VARCHAR(500) NOT NULL DEFAULT '',
    year BIGINT NULL,
    avg_rating DOUBLE PRECISION NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0,
    std_dev DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_update VARCHAR(40) NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_movie_year ON app_movie (year);
CREATE TABLE IF NOT EXISTS app_recommendationdata (
    id BIGSERIAL PRIMARY KEY,
    movie_id_ref BIGINT NOT NULL,
    list_position BIGINT NOT NULL,
    recommendation_score DOUBLE PRECISION NOT NULL,
    popularity_score DOUBLE PRECISION,
    genre_match_score DOUBLE PRECISION DEFAULT 0.0,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_movie_ref ON app_recommendationdata (movie_id_ref);
CREATE INDEX IF NOT EXISTS idx_score ON app_recommendationdata (recommendation_score);
CREATE TABLE IF NOT EXISTS app_userfeatures (
    user_id BIGINT PRIMARY KEY,
    avg_rating DOUBLE PRECISION NOT NULL,
    rating_count BIGINT NOT NULL,
    std_dev DOUBLE PRECISION NOT NULL,
    last_update VARCHAR(40) NULL
);
CREATE TABLE IF NOT EXISTS app_ratingdistribution (
    rating DOUBLE PRECISION PRIMARY KEY,
    rating_count BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS app_batchrun (
    id BIGSERIAL PRIMARY KEY,
    started_at VARCHAR(40) NOT NULL,
    finished_at VARCHAR(40) NOT NULL,
    engine VARCHAR(20) NOT NULL,
    source VARCHAR(1000) NOT NULL,
    status VARCHAR(20) NOT NULL,
    records_read BIGINT NOT NULL DEFAULT 0,
    ratings BIGINT NOT NULL DEFAULT 0,
    users BIGINT NOT NULL DEFAULT 0,
    movies BIGINT NOT NULL DEFAULT 0,
    ranked BIGINT NOT NULL DEFAULT 0,
    global_mean DOUBLE PRECISION NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    error TEXT NULL
);
