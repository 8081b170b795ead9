-- Plans and one timed execution of each read, with the SQL text of src/rates/store.rs. Each is
-- run once untimed first so the plan below is of a warm cache, as the pgbench runs are.
\set ON_ERROR_STOP on
\pset pager off
\set t '''2026-01-15 12:34:56+00'''
\set f '''2025-12-16 12:34:56+00'''
\echo '-- latest: snapshot_at(None)'
SELECT id, provider, base, as_of, currencies FROM rate_snapshots
         WHERE NULL::timestamptz IS NULL OR as_of <= NULL::timestamptz
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1 \gset l_
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id, provider, base, as_of, fetched_at, last_seen_at, currencies FROM rate_snapshots
         WHERE NULL::timestamptz IS NULL OR as_of <= NULL::timestamptz
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1;
\echo '-- latest: quotes_at(169 currencies, newest as_of)'
SELECT count(*) FROM (SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:'l_currencies'::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :'l_provider' AND base = :'l_base' AND quote = c.code AND as_of <= :'l_as_of'
             ORDER BY as_of DESC LIMIT 1
         ) q) w;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:'l_currencies'::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :'l_provider' AND base = :'l_base' AND quote = c.code AND as_of <= :'l_as_of'
             ORDER BY as_of DESC LIMIT 1
         ) q;
\echo '-- as of' :t ': snapshot_at(t)'
SELECT id, provider, base, as_of, currencies FROM rate_snapshots
         WHERE :t::timestamptz IS NULL OR as_of <= :t
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1 \gset a_
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id, provider, base, as_of, fetched_at, last_seen_at, currencies FROM rate_snapshots
         WHERE :t::timestamptz IS NULL OR as_of <= :t
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1;
\echo '-- as of: quotes_at(169 currencies, snapshot as_of)'
SELECT count(*) FROM (SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:'a_currencies'::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :'a_provider' AND base = :'a_base' AND quote = c.code AND as_of <= :'a_as_of'
             ORDER BY as_of DESC LIMIT 1
         ) q) w;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest(:'a_currencies'::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :'a_provider' AND base = :'a_base' AND quote = c.code AND as_of <= :'a_as_of'
             ORDER BY as_of DESC LIMIT 1
         ) q;
\echo '-- series base=USD symbols=GBP,JPY,CHF, 30 days to' :t ': quotes_at(from)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT c.code AS quote, q.id, q.rate::text AS rate, q.as_of
         FROM unnest('{CHF,GBP,JPY,USD}'::text[]) AS c(code)
         CROSS JOIN LATERAL (
             SELECT id, rate, as_of FROM rate_quotes
             WHERE provider = :'a_provider' AND base = :'a_base' AND quote = c.code AND as_of <= :f
             ORDER BY as_of DESC LIMIT 1
         ) q;
\echo '-- series: changes_between(from, to]'
SELECT count(*) FROM (SELECT quote, as_of, rate::text AS rate FROM rate_quotes
         WHERE provider = :'a_provider' AND base = :'a_base' AND quote = ANY('{CHF,GBP,JPY,USD}'::text[]) AND as_of > :f AND as_of <= :t
         ORDER BY as_of, quote LIMIT 20001) w;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT quote, as_of, rate::text AS rate FROM rate_quotes
         WHERE provider = :'a_provider' AND base = :'a_base' AND quote = ANY('{CHF,GBP,JPY,USD}'::text[]) AND as_of > :f AND as_of <= :t
         ORDER BY as_of, quote LIMIT 20001;
\echo '-- snapshot_at(t) as a prepared statement with a generic plan (what a reused sqlx'
\echo '-- statement may get after five executions): the OR ... IS NULL keeps as_of out of the'
\echo '-- index condition, so the scan walks the as_of index down from the newest row'
PREPARE snapshot_at(timestamptz) AS SELECT id, provider, base, as_of, fetched_at, last_seen_at, currencies FROM rate_snapshots
         WHERE $1::timestamptz IS NULL OR as_of <= $1
         ORDER BY as_of DESC, last_seen_at DESC LIMIT 1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE snapshot_at(:t);
SET plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE snapshot_at(:t);
RESET plan_cache_mode;
\echo '-- which plan the plan cache picks by itself after 6 executions (generic_plans > 0 = generic)'
\o /dev/null
EXECUTE snapshot_at(:t); EXECUTE snapshot_at(:t); EXECUTE snapshot_at(:t);
EXECUTE snapshot_at(:t); EXECUTE snapshot_at(:t); EXECUTE snapshot_at(:t);
\o
SELECT name, generic_plans, custom_plans FROM pg_prepared_statements;
DEALLOCATE snapshot_at;
