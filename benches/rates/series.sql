-- GET /rates/series?base=USD&symbols=GBP,JPY,CHF&interval=day over 30 days ending at a random
-- instant: series::series runs store::snapshot_at(to), store::quotes_at(needed, from) and
-- store::changes_between(needed, from, to, 20001); needed = CHF,GBP,JPY,USD (the pivot EUR
-- excluded). The first statement only turns the random number into timestamps.
\set e random(1735689600 + 2592000, 1735689600 + 54000000)
SELECT to_timestamp(:e) - interval '30 days' AS f, to_timestamp(:e) AS t, '{CHF,GBP,JPY,USD}' AS codes \gset
SELECT id, provider, base, as_of, fetched_at, last_seen_at, currencies FROM rate_snapshots
         WHERE :t::timestamptz IS NULL OR as_of <= :t
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1 \gset s_
SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:codes::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :s_provider AND base = :s_base AND quote = c.code AND as_of <= :f
             ORDER BY as_of DESC LIMIT 1
         ) q;
SELECT quote, as_of, rate::text AS rate FROM rate_quotes
         WHERE provider = :s_provider AND base = :s_base AND quote = ANY(:codes::text[]) AND as_of > :f AND as_of <= :t
         ORDER BY as_of, quote LIMIT 20001;
