-- Every price can say where its rate came from: the names of the sources whose values made the
-- consensus it was priced on (with `rates.sources`), or the one provider's name (`seed` for the
-- embedded history). Written in the same statement as the row. Rows priced before this column
-- existed have no record of it: the empty list, not a guess.
ALTER TABLE conversions ADD COLUMN rate_sources text[] NOT NULL DEFAULT '{}';
ALTER TABLE quotes ADD COLUMN rate_sources text[] NOT NULL DEFAULT '{}';
