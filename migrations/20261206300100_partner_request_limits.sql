-- A partner's own request limit, set by an admin; partners without a row get
-- `limits.requests_per_minute`. The bound matches settings::MAX_REQUESTS_PER_MINUTE.
CREATE TABLE partner_limits (
    partner_id          uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    requests_per_minute integer     NOT NULL CHECK (requests_per_minute BETWEEN 1 AND 1000000),
    updated_at          timestamptz NOT NULL
);
