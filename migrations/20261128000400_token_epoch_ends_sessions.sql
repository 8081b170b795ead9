-- Each user has a token epoch; every access and refresh token records the epoch it was issued
-- in, and a token whose epoch is not its user's current one is refused. A new password, a role
-- change or disabling the account moves the epoch on, so every session issued before ends — and
-- stays ended when the account is enabled again.
--
-- The trigger does the bump so that no path that changes these columns (the API, the CLI, an
-- operator's UPDATE) can forget it. The service still drops its cached copy of the epoch after
-- its own changes so that they take effect at once.

ALTER TABLE users ADD COLUMN token_epoch integer NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN token_epoch integer NOT NULL DEFAULT 0;

CREATE FUNCTION users_bump_token_epoch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.password_hash IS DISTINCT FROM OLD.password_hash
       OR NEW.role IS DISTINCT FROM OLD.role
       OR (NEW.disabled_at IS NOT NULL AND OLD.disabled_at IS NULL) THEN
        NEW.token_epoch := OLD.token_epoch + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_token_epoch
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_token_epoch();
