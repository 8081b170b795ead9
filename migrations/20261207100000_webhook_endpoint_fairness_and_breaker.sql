-- Fairness between webhook receivers: the dispatcher caps the attempts in flight per endpoint and
-- per partner, and pauses an endpoint that keeps failing (a circuit breaker). Both are kept
-- here, not in one process, so that every instance sharing this database agrees.

-- While an attempt is in flight: until when its claim holds. Cleared when its outcome is
-- recorded; an attempt whose dispatcher died stops counting once this has passed.
ALTER TABLE webhook_deliveries ADD COLUMN leased_until timestamptz;

-- The attempts in flight per endpoint (few rows: only those being sent).
CREATE INDEX webhook_deliveries_in_flight_idx ON webhook_deliveries (endpoint_id, leased_until)
    WHERE leased_until IS NOT NULL;
-- An endpoint's due deliveries, oldest first: the fair claim takes a few from each endpoint.
CREATE INDEX webhook_deliveries_endpoint_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE state = 'pending';

ALTER TABLE webhook_endpoints
    -- Failed attempts in a row (a 2xx resets it): the breaker opens at
    -- `webhooks.breaker_failures`.
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0
        CONSTRAINT webhook_endpoints_consecutive_failures_not_negative
        CHECK (consecutive_failures >= 0),
    -- While the breaker is open: until when the endpoint's deliveries wait (postponed, not
    -- failed: no attempt is counted while they wait).
    ADD COLUMN paused_until timestamptz;
