-- Partner pricing: a markup per partner (a default and per-pair overrides), set by admins and
-- audited; every price stores its breakdown (reference rate, markup, lock spread, the markup in
-- money), so what a partner paid and what the service earned are read, never recomputed.

CREATE TABLE partner_pricing (
    partner_id  uuid        PRIMARY KEY REFERENCES users (id),
    -- Basis points below the reference rate for every pair without an override.
    markup_bps  integer     NOT NULL CHECK (markup_bps BETWEEN 0 AND 9999),
    updated_at  timestamptz NOT NULL,
    updated_by  uuid        NOT NULL REFERENCES users (id)
);

-- A pair's own markup (from → to; the other direction is another pair).
CREATE TABLE partner_pair_markups (
    partner_id    uuid    NOT NULL REFERENCES partner_pricing (partner_id) ON DELETE CASCADE,
    from_currency text    NOT NULL REFERENCES currencies (code),
    to_currency   text    NOT NULL REFERENCES currencies (code),
    markup_bps    integer NOT NULL CHECK (markup_bps BETWEEN 0 AND 9999),
    PRIMARY KEY (partner_id, from_currency, to_currency),
    CONSTRAINT partner_pair_markups_distinct CHECK (from_currency <> to_currency)
);

-- Who changed a partner's pricing, when, from what to what. Never updated or deleted.
CREATE TABLE partner_pricing_changes (
    id         bigserial   PRIMARY KEY,
    partner_id uuid        NOT NULL REFERENCES users (id),
    changed_by uuid        NOT NULL REFERENCES users (id),
    changed_at timestamptz NOT NULL,
    -- {"markup_bps": …, "pairs": {"USD/JPY": …}}; NULL before the first change (the default).
    previous   jsonb,
    current    jsonb       NOT NULL
);
CREATE INDEX partner_pricing_changes_partner_idx ON partner_pricing_changes (partner_id, id DESC);

-- The breakdown of each conversion's price. `reference_rate` is NULL on conversions made
-- before it was recorded, whose rate was the reference rate (no markup) unless they used a
-- rate lock, whose breakdown is copied from the lock below.
ALTER TABLE conversions
    ADD COLUMN reference_rate numeric CHECK (reference_rate > 0),
    ADD COLUMN markup_bps     integer NOT NULL DEFAULT 0 CHECK (markup_bps BETWEEN 0 AND 9999),
    ADD COLUMN lock_bps       integer NOT NULL DEFAULT 0 CHECK (lock_bps BETWEEN 0 AND 9999),
    -- amount × reference_rate (rounded toward zero to the target's minor units) − result.
    ADD COLUMN markup_amount  numeric NOT NULL DEFAULT 0 CHECK (markup_amount >= 0);

-- A lock's spread is now two parts: the partner's markup and the lock's own spread
-- (spread_bps = markup_bps + lock spread).
ALTER TABLE quotes
    ADD COLUMN markup_bps integer NOT NULL DEFAULT 0 CHECK (markup_bps BETWEEN 0 AND 9999);

-- The rollup carries the markup, so revenue reports read whole days from it.
ALTER TABLE conversion_daily_totals ADD COLUMN total_markup numeric NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION conversion_daily_totals_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_daily_totals AS t (partner_id, day, from_currency, to_currency, slot,
        count, total_amount, total_result, total_markup, from_minor_units, to_minor_units)
    SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency,
           pg_backend_pid() % 8, count(*), sum(amount), sum(result), sum(markup_amount),
           max(from_minor_units), max(to_minor_units)
    FROM new_rows
    WHERE status <> 'cancelled'
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, from_currency, to_currency, slot) DO UPDATE SET
        count = t.count + EXCLUDED.count,
        total_amount = t.total_amount + EXCLUDED.total_amount,
        total_result = t.total_result + EXCLUDED.total_result,
        total_markup = t.total_markup + EXCLUDED.total_markup,
        from_minor_units = GREATEST(t.from_minor_units, EXCLUDED.from_minor_units),
        to_minor_units = GREATEST(t.to_minor_units, EXCLUDED.to_minor_units);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conversion_daily_totals_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_daily_totals AS t (partner_id, day, from_currency, to_currency, slot,
        count, total_amount, total_result, total_markup, from_minor_units, to_minor_units)
    SELECT partner_id, day, from_currency, to_currency, pg_backend_pid() % 8, sum(sign),
           sum(sign * amount), sum(sign * result), sum(sign * markup_amount),
           max(from_minor_units), max(to_minor_units)
    FROM (
        SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date AS day, from_currency,
               to_currency, -1 AS sign, amount, result, markup_amount, from_minor_units,
               to_minor_units
        FROM old_rows WHERE status <> 'cancelled'
        UNION ALL
        SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency, 1,
               amount, result, markup_amount, from_minor_units, to_minor_units
        FROM new_rows WHERE status <> 'cancelled'
    ) AS changes
    GROUP BY 1, 2, 3, 4
    HAVING sum(sign) <> 0 OR sum(sign * amount) <> 0 OR sum(sign * result) <> 0
        OR sum(sign * markup_amount) <> 0
    ON CONFLICT (partner_id, day, from_currency, to_currency, slot) DO UPDATE SET
        count = t.count + EXCLUDED.count,
        total_amount = t.total_amount + EXCLUDED.total_amount,
        total_result = t.total_result + EXCLUDED.total_result,
        total_markup = t.total_markup + EXCLUDED.total_markup,
        from_minor_units = GREATEST(t.from_minor_units, EXCLUDED.from_minor_units),
        to_minor_units = GREATEST(t.to_minor_units, EXCLUDED.to_minor_units);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conversion_daily_totals_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversion_daily_totals AS t (partner_id, day, from_currency, to_currency, slot,
        count, total_amount, total_result, total_markup, from_minor_units, to_minor_units)
    SELECT partner_id, (created_at AT TIME ZONE 'UTC')::date, from_currency, to_currency,
           pg_backend_pid() % 8, -count(*), -sum(amount), -sum(result), -sum(markup_amount),
           max(from_minor_units), max(to_minor_units)
    FROM old_rows
    WHERE status <> 'cancelled'
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (partner_id, day, from_currency, to_currency, slot) DO UPDATE SET
        count = t.count + EXCLUDED.count,
        total_amount = t.total_amount + EXCLUDED.total_amount,
        total_result = t.total_result + EXCLUDED.total_result,
        total_markup = t.total_markup + EXCLUDED.total_markup;
    RETURN NULL;
END
$$;

-- Conversions made on a lock before the breakdown was stored: the lock's reference rate and
-- spread, and what the spread was worth (never negative: results then rounded half-even).
-- The update trigger carries the markup into the rollup.
UPDATE conversions c
SET reference_rate = q.reference_rate,
    lock_bps = q.spread_bps,
    markup_amount = GREATEST(0, trunc(c.amount * q.reference_rate, c.to_minor_units) - c.result)
FROM quotes q
WHERE c.quote_id = q.id AND c.reference_rate IS NULL;
