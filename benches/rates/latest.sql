-- "Latest" as RatesView::load reads it when the in-memory cache is refreshed:
-- store::snapshot_at(None), then store::quotes_at for every currency of that snapshot.
-- (sqlx binds NULL for `at`; pgbench cannot bind NULL, so the NULL is written in.)
SELECT id, provider, base, as_of, fetched_at, last_seen_at, currencies FROM rate_snapshots
         WHERE NULL::timestamptz IS NULL OR as_of <= NULL::timestamptz
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1 \gset s_
SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:s_currencies::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :s_provider AND base = :s_base AND quote = c.code AND as_of <= :s_as_of
             ORDER BY as_of DESC LIMIT 1
         ) q;
