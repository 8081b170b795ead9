-- Each of `rates.sources`' answer in each fetch cycle, for the monitor: the breakers live in the
-- memory of the instance that fetched, so what it saw is written down for every instance to
-- show. A few rows per source per cycle; `prune_expired_data` deletes them after
-- `rates.source_fetch_retention_days`.
CREATE TABLE rate_source_fetches (
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL CHECK (length(source) BETWEEN 1 AND 40),
    fetched_at  timestamptz NOT NULL,
    -- Answered with rates on the pivot; otherwise `error` says why not.
    ok          boolean     NOT NULL,
    latency_ms  integer     NOT NULL CHECK (latency_ms >= 0),
    -- The source's circuit breaker after the fetch.
    breaker     text        NOT NULL CHECK (breaker IN ('closed', 'open', 'half-open')),
    error       text,
    CONSTRAINT rate_source_fetches_error_iff_failed CHECK (ok = (error IS NULL))
);

-- A source's newest fetch, and its newest success: one backward probe each.
CREATE INDEX rate_source_fetches_source_idx ON rate_source_fetches (source, fetched_at DESC, id DESC);
-- Retention deletes by age.
CREATE INDEX rate_source_fetches_fetched_idx ON rate_source_fetches (fetched_at);

-- The monitor reads the consensus outcomes in force during the last day (their exclusions):
-- by `last_seen_at`, not a scan of the whole history.
CREATE INDEX rate_consensus_observations_last_seen_idx
    ON rate_consensus_observations (last_seen_at);
