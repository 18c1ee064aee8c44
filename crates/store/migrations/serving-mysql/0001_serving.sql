-- The seed's Django tables (app_movie, app_recommendationdata) with wider
-- numeric types (exact scores, 64-bit ids), plus what the API serves beside them.
CREATE TABLE IF NOT EXISTS app_movie (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    movie_id BIGINT NOT NULL UNIQUE,
    title VARCHAR(500) NOT NULL,
    genres VARCHAR(500) NOT NULL DEFAULT '',
    year BIGINT NULL,
    avg_rating DOUBLE NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0,
    std_dev DOUBLE NOT NULL DEFAULT 0,
    last_update VARCHAR(40) NULL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    INDEX idx_movie_year (year)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS app_recommendationdata (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    movie_id_ref BIGINT NOT NULL,
    list_position BIGINT NOT NULL,
    recommendation_score DOUBLE NOT NULL,
    popularity_score DOUBLE,
    genre_match_score DOUBLE DEFAULT 0.0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    INDEX idx_movie_ref (movie_id_ref),
    INDEX idx_score (recommendation_score)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS app_userfeatures (
    user_id BIGINT PRIMARY KEY,
    avg_rating DOUBLE NOT NULL,
    rating_count BIGINT NOT NULL,
    std_dev DOUBLE NOT NULL,
    last_update VARCHAR(40) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS app_ratingdistribution (
    rating DOUBLE NOT NULL PRIMARY KEY,
    rating_count BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS app_batchrun (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
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
    global_mean DOUBLE NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    error TEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
