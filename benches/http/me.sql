-- GET /api/v1/me: auth::store::find_by_id.
SELECT id, email, password_hash, role, display_name, disabled_at, created_at, updated_at, token_epoch
FROM users WHERE id = :partner;
