-- Webhooks (Standard Webhooks): a partner's endpoints, the outbox of events written in the same
-- transaction as the change that causes them, and one delivery per event and endpoint that the
-- dispatcher works through with retries.

CREATE TABLE webhook_endpoints (
    id              uuid        PRIMARY KEY,
    partner_id      uuid        NOT NULL REFERENCES users (id),
    url             text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    -- The event types delivered here; at least one, each one we know.
    events          text[]      NOT NULL CHECK (
        cardinality(events) > 0
        AND events <@ ARRAY['conversion.created', 'conversion.finalized',
                            'conversion.cancelled', 'quote.expired']::text[]),
    -- The signing secret as given to the partner (`whsec_` + base64). HMAC needs the key
    -- itself, so it cannot be hashed like a password.
    secret          text        NOT NULL,
    -- After a rotation the previous secret keeps signing (beside the new one) until it expires.
    previous_secret text,
    previous_secret_expires_at timestamptz,
    created_at      timestamptz NOT NULL,
    -- A deleted endpoint receives nothing more; its deliveries stay readable in the record.
    deleted_at      timestamptz,
    CONSTRAINT webhook_endpoints_previous_secret_has_expiry
        CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- Every outbox write looks up a partner's live endpoints: it must cost an index probe.
CREATE INDEX webhook_endpoints_partner_idx ON webhook_endpoints (partner_id, created_at)
    WHERE deleted_at IS NULL;

CREATE TABLE webhook_events (
    -- Sent as `webhook-id`: the same on every attempt and every endpoint of the event.
    id          uuid        PRIMARY KEY,
    partner_id  uuid        NOT NULL REFERENCES users (id),
    event_type  text        NOT NULL CHECK (event_type IN (
        'conversion.created', 'conversion.finalized', 'conversion.cancelled', 'quote.expired',
        'ping')),
    -- The exact body sent, `{"type","timestamp","data"}`, as text: signatures cover these
    -- bytes, and jsonb would reorder the keys of the resource.
    payload     text        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY,
    event_id         uuid        NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state            text        NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'delivered', 'dead')),
    -- Attempts started on the current schedule (a manual retry of a finished delivery starts
    -- a new schedule).
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a pending delivery is due. A claimed attempt pushes it past its timeout, so a worker
    -- that dies mid-attempt leaves the delivery due again instead of stuck.
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_latency_ms  integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL,
    CONSTRAINT webhook_deliveries_one_per_endpoint UNIQUE (event_id, endpoint_id),
    CONSTRAINT webhook_deliveries_pending_is_due CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);

-- The dispatcher's claim: due pending deliveries, oldest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- A partner's delivery list per endpoint, newest first (keyset pagination).
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
-- The monitor's counts of dead deliveries.
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (endpoint_id) WHERE state = 'dead';
