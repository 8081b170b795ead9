-- The currencies the service knows. `enabled` = offered for new conversions; `retired_at` = deleted
-- by an admin while history (rates, conversions) still references it: kept, hidden, refused for
-- new conversions, readable in history. Rows referenced by foreign keys cannot be deleted.
CREATE TABLE currencies (
    code         text        PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    minor_units  smallint    NOT NULL CHECK (minor_units BETWEEN 0 AND 4),
    numeric_code smallint    CHECK (numeric_code BETWEEN 0 AND 999),
    is_iso       boolean     NOT NULL,
    enabled      boolean     NOT NULL DEFAULT true,
    retired_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT currencies_retired_not_enabled CHECK (retired_at IS NULL OR NOT enabled)
);
