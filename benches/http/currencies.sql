-- GET /api/v1/currencies: currencies::store::list (include_inactive = false).
SELECT code, name, minor_units, numeric_code, is_iso, enabled, retired_at, created_at, updated_at
FROM currencies
WHERE :inactive OR (enabled AND retired_at IS NULL)
ORDER BY code;
