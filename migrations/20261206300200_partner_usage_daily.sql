-- What each partner used per UTC day: requests by class (read: GET/HEAD/OPTIONS, write: the
-- rest) and status class (2 for 2xx…), and how many of them were 429s. Instances add their
-- buffered counts every second or so (`access::usage`); rows older than
-- `usage.retention_days` are deleted. No foreign key to `users`: the counts come from tokens
-- that verified, and a batch of counts must not fail because one account was deleted since.
CREATE TABLE partner_usage_daily (
    partner_id   uuid     NOT NULL,
    day          date     NOT NULL,
    class        text     NOT NULL CHECK (class IN ('read', 'write')),
    status_class smallint NOT NULL CHECK (status_class BETWEEN 1 AND 5),
    requests     bigint   NOT NULL CHECK (requests >= 0),
    rate_limited bigint   NOT NULL CHECK (rate_limited BETWEEN 0 AND requests),
    PRIMARY KEY (partner_id, day, class, status_class)
);

-- Retention deletes by day across partners.
CREATE INDEX partner_usage_daily_day_idx ON partner_usage_daily (day);
