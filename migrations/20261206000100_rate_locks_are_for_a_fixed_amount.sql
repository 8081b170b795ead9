-- A rate lock is an option the service writes: held for any amount and any number of
-- conversions it was free money whenever the market moved. From now on a redeemable lock (any
-- lock but 'none') fixes its amount and is used once; what it is worth counts against the
-- partner's cap on open locks (quotes.max_open_locks, quotes.max_open_notional).
-- Locks made before this rule keep their rows (a price is kept as it was made); a lock without
-- an amount can no longer be converted on, which the service refuses.
ALTER TABLE quotes ADD COLUMN notional numeric CHECK (notional >= 0);
ALTER TABLE quotes ADD CONSTRAINT quotes_redeemable_lock_has_amount
    CHECK (lock = 'none' OR amount IS NOT NULL) NOT VALID;
-- A partner's open locks are counted and summed at every new lock.
CREATE INDEX quotes_open_locks_idx ON quotes (partner_id, expires_at)
    WHERE lock <> 'none' AND used_at IS NULL;
