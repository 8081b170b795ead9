-- GET /api/v1/conversions?limit=20: conversions::store::history::list for one partner, first page.
SELECT id, partner_id, from_currency, to_currency, amount, from_minor_units, to_minor_units, rate,
       result, rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status,
       created_at, finalizes_at, finalized_at, cancelled_at, quote_id
FROM conversions
WHERE partner_id = :partner
  AND (NULL::text IS NULL OR from_currency = NULL::text OR to_currency = NULL::text)
  AND created_at >= COALESCE(NULL::timestamptz, '-infinity'::timestamptz)
  AND created_at < COALESCE(NULL::timestamptz, 'infinity'::timestamptz)
  AND (created_at, id) < (COALESCE(NULL::timestamptz, 'infinity'::timestamptz),
                          COALESCE(NULL::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
ORDER BY created_at DESC, id DESC
LIMIT 21;
