-- Storage per update: the generated change-only table (169 quotes per publication, every one
-- changed) against a table holding every ordered pair of the 170 currencies (170 x 169 = 28,730
-- rows per publication), built the same way (same columns and indexes, loaded then indexed,
-- vacuumed) for the last :pair_obs publications. Pair rates are the cross rates of the stored
-- quotes at 6 significant digits, like the quotes.
\set ON_ERROR_STOP on
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';
\timing on
DROP TABLE IF EXISTS bench_rate_pairs;
CREATE TABLE bench_rate_pairs (
    id         bigserial   PRIMARY KEY,
    provider   text        NOT NULL,
    base       text        NOT NULL,
    quote      text        NOT NULL,
    as_of      timestamptz NOT NULL,
    rate       numeric     NOT NULL CHECK (rate > 0),
    fetched_at timestamptz NOT NULL
);
WITH pubs AS (
    SELECT as_of FROM rate_snapshots ORDER BY as_of DESC LIMIT :pair_obs
), sides AS (
    SELECT q.as_of, q.fetched_at, q.quote AS code, q.rate FROM rate_quotes q JOIN pubs USING (as_of)
    WHERE q.provider = 'frankfurter' AND q.base = 'EUR'
    UNION ALL
    SELECT as_of, as_of + interval '2 seconds', 'EUR', 1::numeric FROM pubs
)
INSERT INTO bench_rate_pairs (provider, base, quote, as_of, rate, fetched_at)
SELECT 'frankfurter', a.code, b.code, a.as_of, round(x, 5 - floor(log(x))::int), a.fetched_at
FROM sides a JOIN sides b ON a.as_of = b.as_of AND a.code <> b.code
CROSS JOIN LATERAL (SELECT b.rate / a.rate AS x) r
ORDER BY a.as_of, a.code, b.code;
CREATE UNIQUE INDEX bench_rate_pairs_observation_key ON bench_rate_pairs (provider, base, quote, as_of DESC);
CREATE INDEX bench_rate_pairs_quote_idx ON bench_rate_pairs (quote);
VACUUM (ANALYZE) bench_rate_pairs;
\timing off

\echo
\echo storage (bytes)
WITH t AS (
    SELECT 'rate_quotes (change-only, pivot EUR)' AS layout,
           (SELECT count(*) FROM rate_quotes) AS rows_,
           (SELECT count(*) FROM rate_snapshots) AS updates,
           pg_relation_size('rate_quotes') AS heap,
           pg_indexes_size('rate_quotes') AS indexes,
           pg_total_relation_size('rate_quotes') AS total,
           pg_total_relation_size('rate_snapshots') AS snapshots_total
    UNION ALL
    SELECT 'every pair (170 x 169)',
           (SELECT count(*) FROM bench_rate_pairs),
           :pair_obs,
           pg_relation_size('bench_rate_pairs'),
           pg_indexes_size('bench_rate_pairs'),
           pg_total_relation_size('bench_rate_pairs'),
           NULL
)
SELECT layout, rows_ AS rows, updates, heap, indexes, total,
       round(total::numeric / rows_, 1) AS bytes_per_row,
       round(total::numeric / updates) AS bytes_per_update,
       round(snapshots_total::numeric / updates) AS snapshot_row_bytes_per_update
FROM t;
WITH c AS (SELECT pg_total_relation_size('rate_quotes')::numeric / (SELECT count(*) FROM rate_snapshots) AS b),
     p AS (SELECT pg_total_relation_size('bench_rate_pairs')::numeric / :pair_obs AS b),
     s AS (SELECT pg_total_relation_size('rate_snapshots')::numeric / (SELECT count(*) FROM rate_snapshots) AS b)
SELECT round(p.b / c.b, 1) AS pairs_over_quotes,
       round(p.b / (c.b + s.b), 1) AS pairs_over_quotes_plus_snapshot_row
FROM c, p, s;
DROP TABLE bench_rate_pairs;
