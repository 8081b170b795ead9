-- "The outcome in force for a currency at t" is read per currency, newest first with the row id
-- breaking ties of one instant (two fetches in one second): with `id` in the index, each read is
-- one backward probe that stops at the first row, never a sort of the currency's history.
CREATE INDEX rate_consensus_observations_as_of_idx
    ON rate_consensus_observations (base, quote, observed_at DESC, id DESC);
-- Its prefix; every query that used it uses the new one.
DROP INDEX rate_consensus_observations_quote_idx;
