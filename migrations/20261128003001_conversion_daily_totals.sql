-- The history summary's rollup: per partner, UTC day and currency pair, how many conversions
-- moved money (every status but `cancelled`) and their totals. `GET /conversions/summary`
-- reads whole days from here and only the partial days at the edges of its range from
-- `conversions`, instead of aggregating every conversion of a partner (900 k rows: 300+ ms).
--
-- Kept by statement-level triggers on `conversions`, in the writing statement's transaction,
-- so every writer (single, batch, cancel, finalize, SQL by hand) keeps it exact, and a rolled
-- back conversion never counted. Concurrent writers of one partner, day and pair would all
-- wait on one row lock until each commits; `slot` (the writing backend's pid modulo 8) spreads
-- them over up to eight rows, which the summary adds up. A slot's row may hold negative
-- figures (a cancel counted on another slot than its insert); only the sum over slots means
-- anything.
CREATE TABLE conversion_daily_totals (
    partner_id       uuid     NOT NULL REFERENCES users (id),
    day              date     NOT NULL,
    from_currency    text     NOT NULL REFERENCES currencies (code),
    to_currency      text     NOT NULL REFERENCES currencies (code),
    slot             smallint NOT NULL CHECK (slot BETWEEN 0 AND 7),
    count            bigint   NOT NULL,
    total_amount     numeric  NOT NULL,
    total_result     numeric  NOT NULL,
    -- The largest minor units among the counted conversions (a currency's never change), the
    -- scale the summary shows the totals at.
    from_minor_units smallint NOT NULL,
    to_minor_units   smallint NOT NULL,
    PRIMARY KEY (partner_id, day, from_currency, to_currency, slot)
);
-- The admins' summary across partners reads a range of days.
CREATE INDEX conversion_daily_totals_day_idx ON conversion_daily_totals (day);

CREATE FUNCTION conversion_daily_totals_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_daily_totals AS t (partner_id, day, from_currency, to_currency, slot,
        count, total_amount, total_result, from_minor_units, to_minor_units)
    SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency,
           pg_backend_pid() % 8, count(*), sum(amount), sum(result), max(from_minor_units),
           max(to_minor_units)
    FROM new_rows
    WHERE status <> 'cancelled'
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, from_currency, to_currency, slot) DO UPDATE SET
        count = t.count + EXCLUDED.count,
        total_amount = t.total_amount + EXCLUDED.total_amount,
        total_result = t.total_result + EXCLUDED.total_result,
        from_minor_units = GREATEST(t.from_minor_units, EXCLUDED.from_minor_units),
        to_minor_units = GREATEST(t.to_minor_units, EXCLUDED.to_minor_units);
    RETURN NULL;
END
$$;

-- An update moves a conversion out of the totals when it becomes `cancelled` (and in, were a
-- cancelled one ever revived); finalizing (temporary to permanent) nets to nothing and writes
-- nothing. Amounts, currencies and days are never updated, but would be handled the same way.
CREATE FUNCTION conversion_daily_totals_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_daily_totals AS t (partner_id, day, from_currency, to_currency, slot,
        count, total_amount, total_result, from_minor_units, to_minor_units)
    SELECT partner_id, day, from_currency, to_currency, pg_backend_pid() % 8, sum(sign),
           sum(sign * amount), sum(sign * result), max(from_minor_units), max(to_minor_units)
    FROM (
        SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date AS day, from_currency,
               to_currency, -1 AS sign, amount, result, from_minor_units, to_minor_units
        FROM old_rows WHERE status <> 'cancelled'
        UNION ALL
        SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency, 1,
               amount, result, from_minor_units, to_minor_units
        FROM new_rows WHERE status <> 'cancelled'
    ) AS changes
    GROUP BY 1, 2, 3, 4
    HAVING sum(sign) <> 0 OR sum(sign * amount) <> 0 OR sum(sign * result) <> 0
    ON CONFLICT (partner_id, day, from_currency, to_currency, slot) DO UPDATE SET
        count = t.count + EXCLUDED.count,
        total_amount = t.total_amount + EXCLUDED.total_amount,
        total_result = t.total_result + EXCLUDED.total_result,
        from_minor_units = GREATEST(t.from_minor_units, EXCLUDED.from_minor_units),
        to_minor_units = GREATEST(t.to_minor_units, EXCLUDED.to_minor_units);
    RETURN NULL;
END
$$;

CREATE FUNCTION conversion_daily_totals_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_daily_totals AS t (partner_id, day, from_currency, to_currency, slot,
        count, total_amount, total_result, from_minor_units, to_minor_units)
    SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency,
           pg_backend_pid() % 8, -count(*), -sum(amount), -sum(result), max(from_minor_units),
           max(to_minor_units)
    FROM old_rows
    WHERE status <> 'cancelled'
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, from_currency, to_currency, slot) DO UPDATE SET
        count = t.count + EXCLUDED.count,
        total_amount = t.total_amount + EXCLUDED.total_amount,
        total_result = t.total_result + EXCLUDED.total_result;
    RETURN NULL;
END
$$;

CREATE TRIGGER conversions_daily_totals_insert AFTER INSERT ON conversions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversion_daily_totals_after_insert();
CREATE TRIGGER conversions_daily_totals_update AFTER UPDATE ON conversions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversion_daily_totals_after_update();
CREATE TRIGGER conversions_daily_totals_delete AFTER DELETE ON conversions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversion_daily_totals_after_delete();

-- The conversions stored so far.
INSERT INTO conversion_daily_totals (partner_id, day, from_currency, to_currency, slot, count,
    total_amount, total_result, from_minor_units, to_minor_units)
SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency, 0, count(*),
       sum(amount), sum(result), max(from_minor_units), max(to_minor_units)
FROM conversions
WHERE status <> 'cancelled'
GROUP BY 1, 2, 3, 4;
