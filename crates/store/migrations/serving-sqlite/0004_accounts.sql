-- Web accounts (the Django site's auth tables): argon2 password hashes,
-- server-side sessions and API tokens stored only as SHA-256 hashes of the
-- secret, so a copy of the database opens no session. `user_id` is the
-- account's id in the ratings (MovieLens ids, or 1e9 + n for new sign-ups).
CREATE TABLE IF NOT EXISTS app_user (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username VARCHAR(64) NOT NULL UNIQUE,
    password_hash VARCHAR(200) NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    user_id BIGINT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS app_session (
    token_hash VARCHAR(64) PRIMARY KEY,
    account_id BIGINT NOT NULL,
    csrf VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idx_session_account ON app_session (account_id);
CREATE TABLE IF NOT EXISTS app_apitoken (
    token_hash VARCHAR(64) PRIMARY KEY,
    account_id BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL
);
