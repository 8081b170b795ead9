-- A partner's conversion of an amount at the rate in force. `temporary` during the holding period
-- (cancellable), then `permanent` (immutable) by the finalize job, or `cancelled` by the partner.
-- Every result is reproducible: the rate used and the exact quote rows it came from are kept.
CREATE TABLE conversions (
    id            uuid        PRIMARY KEY,
    partner_id    uuid        NOT NULL REFERENCES users (id),
    from_currency text        NOT NULL REFERENCES currencies (code),
    to_currency   text        NOT NULL REFERENCES currencies (code),
    amount        numeric     NOT NULL CHECK (amount > 0),
    -- The currencies' minor units when converted: amounts are shown at exactly this scale.
    from_minor_units smallint NOT NULL CHECK (from_minor_units BETWEEN 0 AND 4),
    to_minor_units   smallint NOT NULL CHECK (to_minor_units BETWEEN 0 AND 4),
    rate          numeric     NOT NULL CHECK (rate > 0),
    result        numeric     NOT NULL CHECK (result >= 0),
    rate_as_of    timestamptz NOT NULL,
    rate_provider text        NOT NULL,
    -- NULL when that side is the provider's base (the pivot) itself.
    from_quote_id bigint      REFERENCES rate_quotes (id),
    to_quote_id   bigint      REFERENCES rate_quotes (id),
    stale_rate    boolean     NOT NULL DEFAULT false,
    status        text        NOT NULL DEFAULT 'temporary'
                              CHECK (status IN ('temporary', 'permanent', 'cancelled')),
    created_at    timestamptz NOT NULL,
    finalizes_at  timestamptz NOT NULL,
    finalized_at  timestamptz,
    cancelled_at  timestamptz,
    CONSTRAINT conversions_status_timestamps CHECK (
        (status = 'temporary' AND finalized_at IS NULL AND cancelled_at IS NULL) OR
        (status = 'permanent' AND finalized_at IS NOT NULL AND cancelled_at IS NULL) OR
        (status = 'cancelled' AND cancelled_at IS NOT NULL AND finalized_at IS NULL)
    ),
    CONSTRAINT conversions_distinct_currencies CHECK (from_currency <> to_currency)
);

-- History: a partner's conversions newest first (keyset pagination).
CREATE INDEX conversions_partner_created_idx ON conversions (partner_id, created_at DESC, id DESC);
CREATE INDEX conversions_created_idx ON conversions (created_at DESC, id DESC);
-- The finalize job's work list stays small: only temporary rows are indexed.
CREATE INDEX conversions_due_idx ON conversions (finalizes_at) WHERE status = 'temporary';

-- Idempotency-Key per partner: the same key with the same body returns the original conversion.
-- Keys expire (conversions.idempotency_ttl_secs); the prune job deletes expired ones.
CREATE TABLE conversion_idempotency_keys (
    partner_id    uuid        NOT NULL REFERENCES users (id),
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea       NOT NULL,
    conversion_id uuid        NOT NULL REFERENCES conversions (id) DEFERRABLE INITIALLY DEFERRED,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (partner_id, key)
);
CREATE INDEX conversion_idempotency_keys_expiry_idx ON conversion_idempotency_keys (expires_at);
