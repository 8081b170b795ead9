-- The monitor's "outcomes of the last day" are now the outcomes first seen in it (by this index)
-- and the ones in force when it began (by the as-of index). An index on `last_seen_at` did the
-- same in one range scan, but every fetch moves `last_seen_at` of each confirmed outcome: with
-- that column indexed, none of those updates can be HOT, so each one wrote new entries in every
-- index of the table. `observed_at` is written once.
DROP INDEX rate_consensus_observations_last_seen_idx;
CREATE INDEX rate_consensus_observations_observed_idx
    ON rate_consensus_observations (observed_at);
