-- One table of Idempotency-Keys for every idempotent POST (conversions, batches, quotes, webhook
-- endpoints, and any POST added later): a key is remembered per partner and scope, with a hash
-- of the parsed request and the id of what it created. No foreign key to that resource: it may
-- live in any table, and those tables stay free to be partitioned. Keys expire
-- (conversions.idempotency_ttl_secs); the prune job deletes expired ones.
CREATE TABLE idempotency_keys (
    partner_id   uuid        NOT NULL REFERENCES users (id),
    scope        text        NOT NULL CHECK (scope ~ '^[a-z_]{1,64}$'),
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL,
    resource_id  uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (partner_id, scope, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

-- The live keys of the two tables this one replaces move over, their hashes rewritten in the
-- new request encoding (src/idempotency.rs, `RequestHash`) from the conversions they created,
-- so that a retry after the upgrade is still a replay. A field: its UTF-8 length as 8 bytes
-- big-endian, then its bytes; an optional field: byte 0 when absent, byte 1 then the field; an
-- amount without trailing zeros. A conversion is (from, to, amount, quote id?); a batch is its
-- conversions in request order.
CREATE FUNCTION pg_temp.request_field(value text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT int8send(octet_length(value)::int8) || convert_to(value, 'UTF8') $$;

CREATE FUNCTION pg_temp.conversion_fields(from_currency text, to_currency text, amount numeric,
                                          quote_id uuid) RETURNS bytea
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT pg_temp.request_field(from_currency) || pg_temp.request_field(to_currency)
                 || pg_temp.request_field(trim_scale(amount)::text)
                 || CASE WHEN quote_id IS NULL THEN '\x00'::bytea
                         ELSE '\x01'::bytea || pg_temp.request_field(quote_id::text) END $$;

INSERT INTO idempotency_keys (partner_id, scope, key, request_hash, resource_id, created_at, expires_at)
SELECT k.partner_id, 'conversion', k.key,
       sha256(pg_temp.conversion_fields(c.from_currency, c.to_currency, c.amount, c.quote_id)),
       k.conversion_id, k.created_at, k.expires_at
FROM conversion_idempotency_keys k
JOIN conversions c ON c.id = k.conversion_id
WHERE k.expires_at > now();

INSERT INTO idempotency_keys (partner_id, scope, key, request_hash, resource_id, created_at, expires_at)
SELECT k.partner_id, 'batch', k.key, items.hash, k.batch_id, k.created_at, k.expires_at
FROM conversion_batch_idempotency_keys k
CROSS JOIN LATERAL (
    SELECT sha256(string_agg(
               pg_temp.conversion_fields(c.from_currency, c.to_currency, c.amount, c.quote_id),
               ''::bytea ORDER BY c.batch_position)) AS hash
    FROM conversions c
    WHERE c.batch_id = k.batch_id
) AS items
WHERE k.expires_at > now() AND items.hash IS NOT NULL;

DROP FUNCTION pg_temp.conversion_fields(text, text, numeric, uuid);
DROP FUNCTION pg_temp.request_field(text);
DROP TABLE conversion_idempotency_keys;
DROP TABLE conversion_batch_idempotency_keys;
