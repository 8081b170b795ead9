-- The INSERT of conversions::store::insert, one row as POST /api/v1/conversions writes it.
-- RATE, RESULT, AS_OF, TO_QUOTE are taken from a conversion the service stored in this run.
INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, rate, result,
     rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status, created_at, finalizes_at,
     from_minor_units, to_minor_units, quote_id)
VALUES (gen_random_uuid(), :partner, 'EUR', 'USD', 100.00, :rate, :result, :as_of, 'ecb', NULL,
        :to_quote, false, 'temporary', now(), now() + interval '1 hour', 2, 2, NULL);
