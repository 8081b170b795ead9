-- Exchange rates, stored compactly: every observation against the provider's own base (never
-- N² pairs; cross rates are derived on read), and a quote row only when a currency's rate
-- changed since the last stored one for that provider and base. The provider may be polled
-- every few seconds: an unchanged poll only touches `rate_snapshots.last_seen_at`.
--
-- Currency foreign keys make deleting a referenced currency fail; the currencies module turns
-- that into "retire", which is what history needs.

-- One row per (provider, base, publication time): what a poll saw.
CREATE TABLE rate_snapshots (
    id            bigserial   PRIMARY KEY,
    provider      text        NOT NULL CHECK (provider ~ '^[a-z_]+$'),
    base          text        NOT NULL REFERENCES currencies (code),
    -- The provider's timestamp for the rates.
    as_of         timestamptz NOT NULL,
    -- When we first stored it, and when a poll last returned the same publication.
    fetched_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    -- The currencies quoted in this publication, so that a currency the provider stopped
    -- quoting is not carried forward from its last change.
    currencies    text[]      NOT NULL,
    quote_count   integer     NOT NULL CHECK (quote_count >= 0),
    changed_count integer     NOT NULL CHECK (changed_count >= 0),
    CONSTRAINT rate_snapshots_publication_key UNIQUE (provider, base, as_of)
);

-- "Latest" and "as of t" start from the newest snapshot at or before t.
CREATE INDEX rate_snapshots_as_of_idx ON rate_snapshots (as_of DESC);

-- One row per currency per change: units of `quote` per one `base`, from `as_of` on.
CREATE TABLE rate_quotes (
    id         bigserial   PRIMARY KEY,
    provider   text        NOT NULL,
    base       text        NOT NULL REFERENCES currencies (code),
    quote      text        NOT NULL REFERENCES currencies (code),
    as_of      timestamptz NOT NULL,
    rate       numeric     NOT NULL CHECK (rate > 0),
    fetched_at timestamptz NOT NULL,
    CONSTRAINT rate_quotes_not_self CHECK (base <> quote)
);

-- Idempotent writes (ON CONFLICT) and as-of lookups ("newest row at or before t") share one
-- index; descending so the lookup is a single forward index probe.
CREATE UNIQUE INDEX rate_quotes_observation_key ON rate_quotes (provider, base, quote, as_of DESC);

-- Deleting (retiring) a currency checks this foreign key; without an index that is a full scan.
CREATE INDEX rate_quotes_quote_idx ON rate_quotes (quote);
