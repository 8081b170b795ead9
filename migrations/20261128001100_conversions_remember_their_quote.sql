-- A conversion made on a rate lock keeps the quote it used, so its rate is explained by the
-- quote's reference rate and spread.
ALTER TABLE conversions ADD COLUMN quote_id uuid REFERENCES quotes (id);
CREATE INDEX conversions_quote_idx ON conversions (quote_id) WHERE quote_id IS NOT NULL;
