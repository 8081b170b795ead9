-- Client credentials (OAuth 2.0 client_credentials grant): a partner's machines authenticate
-- with a client id and secret instead of a person's email and password. The secret is shown
-- once and stored as its SHA-256 (it is 256 random bits, so a fast hash is as safe as a slow
-- one, and the token endpoint does not pay argon2 per call). A revoked credential stays as a
-- record of what existed; only live ones count against `auth.max_credentials_per_partner`.
CREATE TABLE api_credentials (
    id           uuid PRIMARY KEY,
    partner_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    client_id    text        NOT NULL CHECK (length(client_id) BETWEEN 1 AND 64),
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_credentials_client_id_key UNIQUE (client_id)
);

-- A partner's live credentials: the list, and the count behind the cap.
CREATE INDEX api_credentials_partner_live_idx ON api_credentials (partner_id, created_at)
    WHERE revoked_at IS NULL;
