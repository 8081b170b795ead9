-- `rates.degraded` (a currency's sources fell below the quorum) and `rates.recovered` (they agree
-- again) can be subscribed to and are recorded like the other events. The new lists only add
-- names, so every stored row satisfies them.
ALTER TABLE webhook_endpoints
    DROP CONSTRAINT webhook_endpoints_events_check,
    ADD CONSTRAINT webhook_endpoints_events_check CHECK (
        cardinality(events) > 0
        AND events <@ ARRAY['conversion.created', 'conversion.finalized',
                            'conversion.cancelled', 'quote.expired',
                            'rates.degraded', 'rates.recovered']::text[]);
ALTER TABLE webhook_events
    DROP CONSTRAINT webhook_events_event_type_check,
    ADD CONSTRAINT webhook_events_event_type_check CHECK (event_type IN (
        'conversion.created', 'conversion.finalized', 'conversion.cancelled', 'quote.expired',
        'rates.degraded', 'rates.recovered', 'ping'));
