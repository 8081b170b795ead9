-- Batches: up to 1,000 conversions made all or nothing by one request. Each conversion keeps its
-- batch and its position in the request, so a replayed Idempotency-Key answers in request order.
CREATE TABLE conversion_batches (
    id          uuid        PRIMARY KEY,
    partner_id  uuid        NOT NULL REFERENCES users (id),
    item_count  integer     NOT NULL CHECK (item_count BETWEEN 1 AND 1000),
    created_at  timestamptz NOT NULL
);

ALTER TABLE conversions
    ADD COLUMN batch_id       uuid    REFERENCES conversion_batches (id),
    ADD COLUMN batch_position integer CHECK (batch_position >= 0),
    ADD CONSTRAINT conversions_batch_position_present
        CHECK ((batch_id IS NULL) = (batch_position IS NULL)),
    ADD CONSTRAINT conversions_batch_position_key UNIQUE (batch_id, batch_position);

-- Idempotency-Key per partner for whole batches (single conversions keep theirs in
-- conversion_idempotency_keys). Expired keys are deleted with those.
CREATE TABLE conversion_batch_idempotency_keys (
    partner_id   uuid        NOT NULL REFERENCES users (id),
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL,
    batch_id     uuid        NOT NULL REFERENCES conversion_batches (id) DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (partner_id, key)
);
CREATE INDEX conversion_batch_idempotency_keys_expiry_idx
    ON conversion_batch_idempotency_keys (expires_at);
