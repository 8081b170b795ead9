//! History: each partner's own conversions, filtered and paginated, as JSON or a CSV export,
//! plus per-currency summaries for reports. Admins see everyone's and may filter by partner.
//! Reads conversions only through `conversions::store::history`, with the `Conversions` handle
//! (for its pool).

pub mod routes;
