-- `conversions` becomes a table partitioned by month of `created_at` (native declarative
-- partitioning; docs/scaling.md says why not pg_partman). History reads a partner's recent
-- months, so each query touches a few small partitions and their indexes; old months can be
-- detached for archiving (`conversions.detach_partitions_after_months`, off by default)
-- without a long DELETE.
--
-- Keys carry the partition key, as PostgreSQL requires of a unique index on a partitioned
-- table: the primary key is (id, created_at) and a batch position is unique per
-- (batch_id, batch_position, created_at) (a batch's conversions share one created_at, so this
-- is the old rule). An id is still unique in practice: every id is a fresh UUIDv7 made by
-- the service. No table references conversions (idempotency keys keep theirs in
-- `idempotency_keys`, without a foreign key), so nothing else changes.
--
-- Months are created ahead by `maintain_partitions` (and at start-up) through
-- `conversions_ensure_month_partition`. A row of a month without a partition (a clock set
-- far ahead, a maintenance task that has not run for months) lands in `conversions_default`
-- instead of failing the conversion; creating its month later moves it out of there.
--
-- The existing rows are copied into the new table in this migration's transaction, checked to
-- be all there exactly once, and the old table dropped. The copy holds the table's lock while
-- it runs: on a large table, plan the upgrade for a quiet hour.

ALTER TABLE conversions RENAME TO conversions_unpartitioned;

CREATE TABLE conversions (LIKE conversions_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (created_at);
CREATE TABLE conversions_default PARTITION OF conversions DEFAULT;

-- Creates the partition of `month` (any day of it: the UTC month it falls in) unless it exists,
-- moving the rows of that month out of the default partition into it. Returns the new
-- partition's name, NULL when there was nothing to do. Serialised by an advisory lock, so
-- instances starting together do not race. A table of that name that is not a partition (one
-- detached for archiving) is left alone: rows of its month stay in the default partition.
CREATE FUNCTION conversions_ensure_month_partition(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first_day timestamp := date_trunc('month', month::timestamp);
    lower_bound timestamptz := first_day AT TIME ZONE 'UTC';
    upper_bound timestamptz := (first_day + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'conversions_' || to_char(first_day, 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('conversions partitions'));
    IF to_regclass(format('public.%I', name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE public.%I (LIKE public.conversions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    -- Straight from partition to table: the statement triggers of `conversions` (the daily
    -- totals) do not fire, and these rows are already counted.
    EXECUTE format(
        'WITH moved AS (DELETE FROM public.conversions_default
                        WHERE created_at >= $1 AND created_at < $2 RETURNING *)
         INSERT INTO public.%I SELECT * FROM moved', name)
        USING lower_bound, upper_bound;
    EXECUTE format('ALTER TABLE public.conversions ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
        name, lower_bound, upper_bound);
    RETURN name;
END
$$;

-- Detaches (never drops) the monthly partitions that end at or before `cutoff`, returning
-- their names: each becomes a plain table of that name, kept for archiving.
CREATE FUNCTION conversions_detach_partitions_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('conversions partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.conversions'::regclass
          AND c.relname ~ '^conversions_[0-9]{4}_[0-9]{2}$'
          AND (to_date(substr(c.relname, 13), 'YYYY_MM') + interval '1 month') AT TIME ZONE 'UTC'
              <= cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE public.conversions DETACH PARTITION public.%I', part);
        RETURN NEXT part;
    END LOOP;
END
$$;

-- A partition for every month that has conversions, and for this month and the next two.
SELECT conversions_ensure_month_partition(month)
FROM (
    SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month
    FROM conversions_unpartitioned
    UNION
    SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + n * interval '1 month')::date
    FROM generate_series(0, 2) AS n
) AS months
ORDER BY month;

-- No trigger on the new table yet: the copied rows are already in the daily totals.
INSERT INTO conversions SELECT * FROM conversions_unpartitioned;

DO $$
DECLARE
    before bigint;
    after bigint;
    missing bigint;
BEGIN
    SELECT count(*) INTO before FROM conversions_unpartitioned;
    SELECT count(*) INTO after FROM conversions;
    SELECT count(*) INTO missing FROM conversions_unpartitioned o
        WHERE NOT EXISTS (SELECT 1 FROM conversions n WHERE n.id = o.id AND n.created_at = o.created_at);
    IF before <> after OR missing <> 0 THEN
        RAISE EXCEPTION 'partitioning conversions: % rows before, % after, % missing', before, after, missing;
    END IF;
END
$$;

DROP TABLE conversions_unpartitioned;

ALTER TABLE conversions
    ADD CONSTRAINT conversions_pkey PRIMARY KEY (id, created_at),
    ADD CONSTRAINT conversions_batch_position_key UNIQUE (batch_id, batch_position, created_at),
    ADD CONSTRAINT conversions_partner_id_fkey FOREIGN KEY (partner_id) REFERENCES users (id),
    ADD CONSTRAINT conversions_from_currency_fkey FOREIGN KEY (from_currency) REFERENCES currencies (code),
    ADD CONSTRAINT conversions_to_currency_fkey FOREIGN KEY (to_currency) REFERENCES currencies (code),
    ADD CONSTRAINT conversions_from_quote_id_fkey FOREIGN KEY (from_quote_id) REFERENCES rate_quotes (id),
    ADD CONSTRAINT conversions_to_quote_id_fkey FOREIGN KEY (to_quote_id) REFERENCES rate_quotes (id),
    ADD CONSTRAINT conversions_quote_id_fkey FOREIGN KEY (quote_id) REFERENCES quotes (id),
    ADD CONSTRAINT conversions_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES conversion_batches (id);

CREATE INDEX conversions_partner_created_idx ON conversions (partner_id, created_at DESC, id DESC);
CREATE INDEX conversions_created_idx ON conversions (created_at DESC, id DESC);
CREATE INDEX conversions_due_idx ON conversions (finalizes_at) WHERE status = 'temporary';
CREATE INDEX conversions_partner_status_created_idx
    ON conversions (partner_id, status, created_at DESC, id DESC);
CREATE INDEX conversions_quote_idx ON conversions (quote_id) WHERE quote_id IS NOT NULL;

CREATE TRIGGER conversions_daily_totals_insert AFTER INSERT ON conversions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversion_daily_totals_after_insert();
CREATE TRIGGER conversions_daily_totals_update AFTER UPDATE ON conversions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversion_daily_totals_after_update();
CREATE TRIGGER conversions_daily_totals_delete AFTER DELETE ON conversions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversion_daily_totals_after_delete();
