-- A locked quote's expiry is an event partners can subscribe to (`quote.expired`): the
-- `expire_quotes` job stamps each locked quote once its lock has ended, writing the event in the
-- same statement's transaction, so each expiry is announced exactly once.
ALTER TABLE quotes ADD COLUMN expiry_recorded_at timestamptz;

-- Locks that ended before webhooks existed had no one to tell.
UPDATE quotes SET expiry_recorded_at = expires_at WHERE lock <> 'none' AND expires_at <= now();

-- The job's claim: locked quotes whose expiry is not recorded yet, by expiry.
CREATE INDEX quotes_expiry_unrecorded_idx ON quotes (expires_at)
    WHERE lock <> 'none' AND expiry_recorded_at IS NULL;
