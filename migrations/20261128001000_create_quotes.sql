-- Rate locks: a partner asks for a quote on a currency pair, optionally for a fixed amount, and
-- may convert on it until it expires. The rate is the reference rate made worse for the partner
-- by the lock's spread, and both are kept so the price is explained, never hidden.
CREATE TABLE quotes (
    id              uuid        PRIMARY KEY,
    partner_id      uuid        NOT NULL REFERENCES users (id),
    from_currency   text        NOT NULL REFERENCES currencies (code),
    to_currency     text        NOT NULL REFERENCES currencies (code),
    -- A quote for a fixed amount is converted once, for exactly that amount; without an amount
    -- it locks only the rate, for any number of conversions of the pair until it expires.
    amount          numeric     CHECK (amount > 0),
    result          numeric     CHECK (result >= 0),
    from_minor_units smallint   NOT NULL CHECK (from_minor_units BETWEEN 0 AND 4),
    to_minor_units   smallint   NOT NULL CHECK (to_minor_units BETWEEN 0 AND 4),
    reference_rate  numeric     NOT NULL CHECK (reference_rate > 0),
    spread_bps      integer     NOT NULL CHECK (spread_bps BETWEEN 0 AND 9999),
    rate            numeric     NOT NULL CHECK (rate > 0 AND rate <= reference_rate),
    rate_provider   text        NOT NULL,
    reference_as_of timestamptz NOT NULL,
    -- The stored quote rows the reference rate was derived from (NULL on the pivot's side).
    from_quote_id   bigint      REFERENCES rate_quotes (id),
    to_quote_id     bigint      REFERENCES rate_quotes (id),
    stale_rate      boolean     NOT NULL,
    lock            text        NOT NULL CHECK (lock IN ('none', 'five_minutes', 'hour', 'day')),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL CHECK (expires_at >= created_at),
    -- When a fixed-amount quote was converted on (it is single use).
    used_at         timestamptz,
    CONSTRAINT quotes_amount_has_result CHECK ((amount IS NULL) = (result IS NULL)),
    CONSTRAINT quotes_only_fixed_amount_is_used CHECK (used_at IS NULL OR amount IS NOT NULL),
    CONSTRAINT quotes_distinct_currencies CHECK (from_currency <> to_currency)
);

CREATE INDEX quotes_partner_created_idx ON quotes (partner_id, created_at DESC);
-- The monitor counts active locks.
CREATE INDEX quotes_expires_idx ON quotes (expires_at) WHERE lock <> 'none';
