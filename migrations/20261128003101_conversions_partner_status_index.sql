-- A partner's history filtered by status (`GET /conversions?status=permanent`, and its CSV
-- export) walked `conversions_partner_created_idx` and skipped every row of another status: a
-- partner whose newest tens of thousands of conversions are still `temporary` paid for all of
-- them on every page of its permanent ones. This index serves that filter in order, and the
-- history uses a statement of its own for it (an `$2 IS NULL OR status = $2` filter cannot use
-- the index under a generic plan).
CREATE INDEX conversions_partner_status_created_idx
    ON conversions (partner_id, status, created_at DESC, id DESC);
