-- Access tokens (and renewed sessions, by their first token's id) that were logged out, until
-- they would have expired. PostgreSQL is where a logout is recorded; Redis holds a copy as the
-- fast path, so losing Redis (a flush, a restart) does not bring a logged-out token back.
CREATE TABLE logged_out_tokens (
    jti        uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);

-- The per-request check reads one user's unexpired entries.
CREATE INDEX logged_out_tokens_user_idx ON logged_out_tokens (user_id, expires_at);
