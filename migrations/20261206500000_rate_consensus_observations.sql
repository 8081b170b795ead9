-- Where each consensus rate came from: per currency, the sources whose values agreed and the
-- ones left out with their values and why. Change-only like the quotes: a fetch that sees the
-- same outcome as the currency's last row only moves its `last_seen_at`. `rate` is NULL when
-- fewer sources agreed than the quorum (no new consensus was made).
CREATE TABLE rate_consensus_observations (
    id           bigserial   PRIMARY KEY,
    base         text        NOT NULL REFERENCES currencies (code),
    quote        text        NOT NULL REFERENCES currencies (code),
    -- The first fetch that saw this outcome, and the last one that saw it again.
    observed_at  timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    rate         numeric     CHECK (rate > 0),
    -- Names of the sources whose values agreed.
    used         text[]      NOT NULL,
    -- [{"source": "…", "rate": "…", "reason": "…"}], the rate as text (never a float).
    excluded     jsonb       NOT NULL,
    CONSTRAINT rate_consensus_observations_not_self CHECK (base <> quote),
    CONSTRAINT rate_consensus_observations_seen_after_observed CHECK (last_seen_at >= observed_at)
);

-- "The outcome in force for a currency at t": one backward index probe per currency.
CREATE INDEX rate_consensus_observations_quote_idx
    ON rate_consensus_observations (base, quote, observed_at DESC);
