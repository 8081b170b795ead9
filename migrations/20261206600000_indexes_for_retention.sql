-- `prune_expired_data` finds what outlived its retention by age, in small batches: each batch
-- must be an index range scan, not a scan of the whole table.
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);
-- Every quote, locked or not (quotes_expires_idx covers only locks).
CREATE INDEX quotes_expires_all_idx ON quotes (expires_at);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
