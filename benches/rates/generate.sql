-- Bulk quotes for the read benchmarks: :n_obs publications, 15 minutes apart from 2025-01-01,
-- of every enabled currency but EUR (169) against EUR, every currency changed in every one
-- (the worst case for change-only storage: 169 rows per publication). Values are a smooth
-- wander plus noise around a per-currency level, NUMERIC at 6 significant digits.
--
-- Rows go in in time order (as live fetches write them). The two rate_quotes indexes are
-- dropped for the load and rebuilt with the migration's exact definitions; foreign-key triggers
-- are skipped for the load (session_replication_role = replica): every code comes from
-- `currencies`, so the keys hold. Run on a scratch database only: it empties the rates tables.
\set ON_ERROR_STOP on
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';
-- CASCADE: conversions reference rate_quotes (empty in the scratch database).
TRUNCATE rate_quotes, rate_snapshots RESTART IDENTITY CASCADE;

CREATE TEMP TABLE bench_codes AS
SELECT code, power(10::float8, ((k * 0.377) % 5.2)::float8 - 0.6) AS level, k::float8 AS phase
FROM (SELECT row_number() OVER (ORDER BY code) AS k, code
      FROM currencies WHERE enabled AND code <> 'EUR') c;
SELECT count(*) AS bench_currencies FROM bench_codes \gset
\echo generating :n_obs publications x :bench_currencies currencies

DROP INDEX rate_quotes_observation_key;
DROP INDEX rate_quotes_quote_idx;

\timing on
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO rate_snapshots
    (provider, base, as_of, fetched_at, last_seen_at, currencies, quote_count, changed_count)
SELECT 'frankfurter', 'EUR', t, t + interval '2 seconds', t + interval '14 minutes',
       (SELECT array_agg(code ORDER BY code) FROM bench_codes), :bench_currencies, :bench_currencies
FROM (SELECT timestamptz '2025-01-01 00:00:00+00' + i * interval '15 minutes' AS t
      FROM generate_series(0, :n_obs - 1) AS i) s;

INSERT INTO rate_quotes (provider, base, quote, as_of, rate, fetched_at)
SELECT 'frankfurter', 'EUR', c.code,
       timestamptz '2025-01-01 00:00:00+00' + i * interval '15 minutes',
       round(v::numeric, 5 - floor(log(v))::int),
       timestamptz '2025-01-01 00:00:02+00' + i * interval '15 minutes'
FROM generate_series(0, :n_obs - 1) AS i
CROSS JOIN LATERAL (
    SELECT b.code,
           b.level * exp(0.05::float8 * sin(i / 700::float8 + b.phase)
                         + 0.02::float8 * sin(i / 97::float8 + 2 * b.phase)
                         + 0.004::float8 * (random() - 0.5)) AS v
    FROM bench_codes b
) c;
COMMIT;

CREATE UNIQUE INDEX rate_quotes_observation_key ON rate_quotes (provider, base, quote, as_of DESC);
CREATE INDEX rate_quotes_quote_idx ON rate_quotes (quote);
VACUUM (ANALYZE) rate_quotes;
VACUUM (ANALYZE) rate_snapshots;
\timing off
SELECT count(*) AS quotes, count(DISTINCT quote) AS currencies, min(as_of), max(as_of)
FROM rate_quotes;
