-- Personalized recommendations and similar movies from the batch's models
-- (gold/user-recommendations, gold/similar-movies), and one record per
-- trained model version (parameters, data snapshot, metrics) for `models list`.
CREATE TABLE IF NOT EXISTS app_userrecommendation (
    user_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    movie_id BIGINT NOT NULL,
    score DOUBLE NOT NULL,
    PRIMARY KEY (user_id, position)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS app_similarmovie (
    movie_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    similar_movie_id BIGINT NOT NULL,
    score DOUBLE NOT NULL,
    PRIMARY KEY (movie_id, position)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS app_model (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(40) NOT NULL,
    version VARCHAR(80) NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    card TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX idx_model_name ON app_model (name, version);
