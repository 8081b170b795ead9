-- "Rates at t" (GET /rates/at, /convert?at=): store::snapshot_at(t) then store::quotes_at for
-- the snapshot's currencies at its as_of, t uniform over the generated range (625 days).
-- The first statement only turns the random number into a timestamptz for the next ones.
\set e random(1735689600, 1735689600 + 54000000)
SELECT to_timestamp(:e) AS t \gset
SELECT id, provider, base, as_of, fetched_at, last_seen_at, currencies FROM rate_snapshots
         WHERE :t::timestamptz IS NULL OR as_of <= :t
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1 \gset s_
SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:s_currencies::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :s_provider AND base = :s_base AND quote = c.code AND as_of <= :s_as_of
             ORDER BY as_of DESC LIMIT 1
         ) q;
