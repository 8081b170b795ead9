-- 1 M conversions for the history benchmarks of benches/http/run.sh: the bench partner
-- (:'partner') holds 9 in 10 of them, 20 other partners the rest. One every :'step' going back
-- from now (run.sh: HIST_STEP, 1 minute by default: about 1.9 years for 1 M rows), six currency
-- pairs, amounts 1.00-1000.99; the newest 1,000 are temporary, one in 25 is cancelled, the rest
-- permanent.
-- Inserted as the service would be: foreign keys checked and the summary's rollup kept by its
-- triggers (which `session_replication_role = replica` would switch off).
INSERT INTO users (id, email, password_hash, role, display_name)
SELECT gen_random_uuid(), 'history-' || g || '@example.com', '!', 'partner', 'History partner ' || g
FROM generate_series(0, 19) g;
CREATE TEMP TABLE others AS
  SELECT (regexp_match(email, '\d+'))[1]::int AS n, id FROM users WHERE email LIKE 'history-%';
-- Every month the rows fall in gets its monthly partition first, as the migration gives an
-- existing table's months: the service itself creates only this month and the next two, so
-- older generated rows would otherwise all land in the default partition.
SELECT conversions_ensure_month_partition(m::date)
FROM generate_series(date_trunc('month', now() - :rows * :'step'::interval), now(),
                     interval '1 month') m;
CREATE TEMP TABLE pairs (n int, f text, t text, fmu int2, tmu int2, rate numeric);
INSERT INTO pairs VALUES (0, 'EUR', 'USD', 2, 2, 1.0541), (1, 'USD', 'JPY', 2, 0, 156.21),
  (2, 'GBP', 'EUR', 2, 2, 1.1987), (3, 'EUR', 'CHF', 2, 2, 0.9312),
  (4, 'USD', 'GBP', 2, 2, 0.7553), (5, 'CHF', 'JPY', 2, 0, 168.02);
INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, from_minor_units,
    to_minor_units, rate, result, rate_as_of, rate_provider, stale_rate, status, created_at,
    finalizes_at, finalized_at, cancelled_at)
SELECT gen_random_uuid(), CASE WHEN g % 10 = 0 THEN o.id ELSE :'partner'::uuid END,
       p.f, p.t, a.amount, p.fmu, p.tmu, p.rate, round(a.amount * p.rate, p.tmu),
       a.created - interval '1 hour', 'ecb', false,
       CASE WHEN g <= 1000 THEN 'temporary' WHEN g % 25 = 0 THEN 'cancelled' ELSE 'permanent' END,
       a.created, a.created + interval '1 day',
       CASE WHEN g > 1000 AND g % 25 <> 0 THEN a.created + interval '1 day' END,
       CASE WHEN g > 1000 AND g % 25 = 0 THEN a.created + interval '1 minute' END
FROM generate_series(1, :rows) g
JOIN pairs p ON p.n = g % 6
JOIN others o ON o.n = (g / 10) % 20
CROSS JOIN LATERAL (SELECT round(1 + (g::bigint * 7919 % 100000) / 100.0, 2) AS amount,
                           now() - g * :'step'::interval AS created) a;
