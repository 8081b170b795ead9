//! SQL for conversions: storing them (one, a batch, or one in a single statement with its key
//! and event), reading one, cancelling and finalizing. The history list and summary are in
//! [`history`]; idempotency keys are [`crate::idempotency`]'s.

pub mod history;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::domain::{ConversionView, Status};
use crate::auth::PartnerId;
use crate::currencies::CurrencyCode;
use crate::idempotency::{HeldKey, Scope};
use crate::money;
use crate::webhooks::EventType;

#[derive(Debug, Clone)]
pub struct ConversionRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub from_currency: CurrencyCode,
    pub to_currency: CurrencyCode,
    pub amount: BigDecimal,
    pub from_minor_units: i16,
    pub to_minor_units: i16,
    pub rate: BigDecimal,
    pub result: BigDecimal,
    pub rate_as_of: DateTime<Utc>,
    pub rate_provider: String,
    pub from_quote_id: Option<i64>,
    pub to_quote_id: Option<i64>,
    pub stale_rate: bool,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub finalizes_at: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The rate lock converted on, if any.
    pub quote_id: Option<Uuid>,
    /// The reference rate `rate` was made from.
    pub reference_rate: BigDecimal,
    /// The partner's markup and the lock's spread taken off it, in basis points.
    pub markup_bps: i32,
    pub lock_bps: i32,
    /// What they came to in the target currency.
    pub markup_amount: BigDecimal,
    /// The sources whose values made the reference rate (the provider's name for a single
    /// provider; empty for a conversion made before this was recorded).
    pub rate_sources: Vec<String>,
}

pub async fn insert(conn: &mut PgConnection, c: &ConversionRow) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, rate, result,
             rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status, created_at, finalizes_at,
             from_minor_units, to_minor_units, quote_id, reference_rate, markup_bps, lock_bps,
             markup_amount, rate_sources)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'temporary', $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22)",
        c.id,
        c.partner_id,
        c.from_currency.as_str(),
        c.to_currency.as_str(),
        &c.amount,
        &c.rate,
        &c.result,
        c.rate_as_of,
        &c.rate_provider,
        c.from_quote_id,
        c.to_quote_id,
        c.stale_rate,
        c.created_at,
        c.finalizes_at,
        c.from_minor_units,
        c.to_minor_units,
        c.quote_id,
        &c.reference_rate,
        c.markup_bps,
        c.lock_bps,
        &c.markup_amount,
        &c.rate_sources,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The `conversion.created` event of a new conversion, for webhooks' outbox.
#[derive(Debug, Clone, Copy)]
pub struct CreatedEvent<'a> {
    pub id: Uuid,
    /// The exact body to deliver ([`crate::webhooks::outbox::body`]).
    pub payload: &'a str,
}

/// An `Idempotency-Key` to claim for a new conversion (scope [`Scope::Conversion`]).
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    pub key: &'a str,
    pub request_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

/// One conversion for [`create`]: the row, the key it claims (if any) and its event.
#[derive(Debug, Clone, Copy)]
pub struct NewConversion<'a> {
    pub row: &'a ConversionRow,
    pub key: Option<NewKey<'a>>,
    pub event: CreatedEvent<'a>,
}

/// What [`create`] did with one conversion.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The conversion is stored and committed (with its key, if any).
    Stored,
    /// One of the two currencies is no longer usable with the minor units the row was priced
    /// at (disabled, retired or changed since the caller looked); nothing was stored.
    CurrencyChanged,
    /// The key is held by an earlier request. Nothing was stored.
    KeyTaken(HeldKey),
    /// The key is held by a request that committed while this statement ran, so the statement
    /// could not read it: ask [`crate::idempotency::find`]. Nothing was stored.
    KeyTakenUnseen,
}

/// Stores conversions priced at the rate in force (one, or a group gathered by
/// [`super::group_commit`]) in ONE statement, committed on its own (no `BEGIN … COMMIT`): the
/// currency checks, the `Idempotency-Key` claims and the inserts travel together, so a group is
/// one round trip to PostgreSQL and one commit, and durable when this returns. Each conversion
/// gets its own answer, in the order given; one conversion's answer never depends on another's:
///
/// - Both currencies of each row must still be enabled, not retired and at the minor units the
///   row was priced at (the caller may have checked them against the in-memory rates cache).
///   A row that fails this is [`Created::CurrencyChanged`]; its neighbours are stored.
/// - A key is claimed in `idempotency_keys` as [`crate::idempotency::Keys::claim`] claims one
///   (the same `INSERT … ON CONFLICT DO UPDATE … WHERE expired`, inlined here for the one round
///   trip): a free or expired key is taken for the row's id, a live one is left alone and
///   reported. A concurrent statement with the same key waits on the primary key until the
///   first commits, then sees its key. Keys are claimed in (partner, key) order, so two
///   statements claiming the same keys wait on each other in one order and cannot deadlock.
///   The caller must not put the same (partner, key) twice in one call: `ON CONFLICT DO UPDATE`
///   cannot touch one row twice in a statement, which fails the whole statement.
/// - Each event goes to webhooks' outbox in the same statement, and only when its conversion
///   was stored and the partner has a live endpoint subscribed to it: the same rows as
///   [`crate::webhooks::outbox::record`] writes (kept here, against the module rule, so that a
///   conversion stays one round trip: checked SQL needs literal text, so the outbox cannot lend
///   its statement). The API test `a_conversion_writes_the_same_webhook_rows_as_the_outbox`
///   fails when the two drift apart.
///
/// An error fails every row of the call (one statement: nothing of it was committed, unless the
/// connection broke after the commit, as with any statement).
pub async fn create(db: &PgPool, group: &[NewConversion<'_>]) -> Result<Vec<Created>, sqlx::Error> {
    let rows = || group.iter().map(|c| c.row);
    let c = Columns::of(rows());
    let partners: Vec<Uuid> = rows().map(|r| r.partner_id).collect();
    let created_at: Vec<DateTime<Utc>> = rows().map(|r| r.created_at).collect();
    let finalizes_at: Vec<DateTime<Utc>> = rows().map(|r| r.finalizes_at).collect();
    let keys: Vec<Option<String>> = group
        .iter()
        .map(|c| c.key.map(|k| k.key.to_owned()))
        .collect();
    let hashes: Vec<Option<Vec<u8>>> = group
        .iter()
        .map(|c| c.key.map(|k| k.request_hash.to_vec()))
        .collect();
    let keys_expire: Vec<Option<DateTime<Utc>>> =
        group.iter().map(|c| c.key.map(|k| k.expires_at)).collect();
    let event_ids: Vec<Uuid> = group.iter().map(|c| c.event.id).collect();
    let payloads: Vec<String> = group.iter().map(|c| c.event.payload.to_owned()).collect();
    let answers = sqlx::query!(
        r#"WITH input AS (
               SELECT t.*,
                      (SELECT count(*) = 2 FROM currencies c
                       WHERE ((c.code = t.from_currency AND c.minor_units = t.from_minor_units)
                              OR (c.code = t.to_currency AND c.minor_units = t.to_minor_units))
                         AND c.enabled AND c.retired_at IS NULL) AS usable
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::numeric[],
                           $6::numeric[], $7::numeric[], $8::timestamptz[], $9::text[],
                           $10::int8[], $11::int8[], $12::bool[], $13::timestamptz[],
                           $14::timestamptz[], $15::int2[], $16::int2[], $17::uuid[],
                           $18::text[], $19::bytea[], $20::timestamptz[], $21::uuid[],
                           $23::text[], $25::numeric[], $26::int4[], $27::int4[],
                           $28::numeric[], $29::text[])
                    WITH ORDINALITY AS t(id, partner_id, from_currency, to_currency, amount, rate,
                                         result, rate_as_of, rate_provider, from_quote_id,
                                         to_quote_id, stale_rate, created_at, finalizes_at,
                                         from_minor_units, to_minor_units, quote_id, idem_key,
                                         request_hash, key_expires_at, event_id, payload,
                                         reference_rate, markup_bps, lock_bps, markup_amount,
                                         rate_sources, position)
           ),
           claim AS (
               INSERT INTO idempotency_keys AS k
                   (partner_id, scope, key, request_hash, resource_id, created_at, expires_at)
               SELECT partner_id, $24, idem_key, request_hash, id, created_at, key_expires_at
               FROM input WHERE usable AND idem_key IS NOT NULL
               ORDER BY partner_id, idem_key
               ON CONFLICT (partner_id, scope, key) DO UPDATE
                   SET request_hash = EXCLUDED.request_hash, resource_id = EXCLUDED.resource_id,
                       created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
                   WHERE k.expires_at <= EXCLUDED.created_at
               RETURNING resource_id
           ),
           inserted AS (
               INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, rate, result,
                   rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status, created_at,
                   finalizes_at, from_minor_units, to_minor_units, quote_id, reference_rate, markup_bps,
                   lock_bps, markup_amount, rate_sources)
               SELECT id, partner_id, from_currency, to_currency, amount, rate, result, rate_as_of,
                      rate_provider, from_quote_id, to_quote_id, stale_rate, 'temporary', created_at,
                      finalizes_at, from_minor_units, to_minor_units, quote_id, reference_rate,
                      markup_bps, lock_bps, markup_amount,
                      CASE WHEN rate_sources = '' THEN '{}'::text[]
                           ELSE string_to_array(rate_sources, ',') END
               FROM input
               WHERE usable AND (idem_key IS NULL OR id IN (SELECT resource_id FROM claim))
               RETURNING id
           ),
           subscribed AS (
               SELECT id, partner_id FROM webhook_endpoints
               WHERE partner_id IN (SELECT partner_id FROM input) AND deleted_at IS NULL
                 AND $22 = ANY(events)
           ),
           event AS (
               INSERT INTO webhook_events (id, partner_id, event_type, payload, created_at)
               SELECT event_id, partner_id, $22, payload, created_at FROM input
               WHERE id IN (SELECT id FROM inserted)
                 AND partner_id IN (SELECT partner_id FROM subscribed)
               RETURNING id, partner_id, created_at
           ),
           deliveries AS (
               INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at)
               SELECT gen_random_uuid(), event.id, subscribed.id, event.created_at, event.created_at
               FROM event JOIN subscribed ON subscribed.partner_id = event.partner_id
           )
           SELECT i.usable AS "usable!",
                  i.id IN (SELECT id FROM inserted) AS "stored!",
                  k.request_hash AS "existing_hash?", k.resource_id AS "existing_id?"
           FROM input i
           -- One primary-key probe per row (LIMIT keeps the planner from making this a join
           -- that reads the whole table).
           LEFT JOIN LATERAL (
               SELECT request_hash, resource_id FROM idempotency_keys
               WHERE partner_id = i.partner_id AND scope = $24 AND key = i.idem_key
               LIMIT 1
           ) AS k ON true
           ORDER BY i.position"#,
        &c.ids,
        &partners,
        &c.from_currencies,
        &c.to_currencies,
        &c.amounts,
        &c.rates,
        &c.results,
        &c.rates_as_of,
        &c.providers,
        &c.from_quote_ids as &[Option<i64>],
        &c.to_quote_ids as &[Option<i64>],
        &c.stale,
        &created_at,
        &finalizes_at,
        &c.from_minor_units,
        &c.to_minor_units,
        &c.quote_ids as &[Option<Uuid>],
        &keys as &[Option<String>],
        &hashes as &[Option<Vec<u8>>],
        &keys_expire as &[Option<DateTime<Utc>>],
        &event_ids,
        EventType::ConversionCreated.as_str(),
        &payloads,
        Scope::Conversion.as_str(),
        &c.reference_rates,
        &c.markups,
        &c.locks,
        &c.markup_amounts,
        &c.rate_sources,
    )
    .fetch_all(db)
    .await?;
    if answers.len() != group.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} answers for {} conversions",
            answers.len(),
            group.len()
        )));
    }
    Ok(answers
        .into_iter()
        .map(|r| match r {
            r if r.stored => Created::Stored,
            r if !r.usable => Created::CurrencyChanged,
            r => match (r.existing_hash, r.existing_id) {
                (Some(request_hash), Some(resource_id)) => Created::KeyTaken(HeldKey {
                    request_hash,
                    resource_id,
                }),
                _ => Created::KeyTakenUnseen,
            },
        })
        .collect())
}

/// The columns a multi-row insert of conversions sends, one array each, for PostgreSQL to
/// unnest: what the group statement ([`create`]) and a batch ([`insert_batch`]) both bind
/// (checked SQL needs each statement's literal text, so the arrays are shared, not the SQL).
struct Columns {
    ids: Vec<Uuid>,
    from_currencies: Vec<String>,
    to_currencies: Vec<String>,
    amounts: Vec<BigDecimal>,
    rates: Vec<BigDecimal>,
    results: Vec<BigDecimal>,
    rates_as_of: Vec<DateTime<Utc>>,
    providers: Vec<String>,
    from_quote_ids: Vec<Option<i64>>,
    to_quote_ids: Vec<Option<i64>>,
    stale: Vec<bool>,
    from_minor_units: Vec<i16>,
    to_minor_units: Vec<i16>,
    quote_ids: Vec<Option<Uuid>>,
    reference_rates: Vec<BigDecimal>,
    markups: Vec<i32>,
    locks: Vec<i32>,
    markup_amounts: Vec<BigDecimal>,
    /// A list per row cannot travel as a ragged `text[][]`: each goes joined (source names have
    /// no comma, `settings::RateSource`) and is split again by PostgreSQL.
    rate_sources: Vec<String>,
}

impl Columns {
    fn of<'a>(rows: impl Iterator<Item = &'a ConversionRow> + Clone) -> Self {
        fn col<'a, T>(
            rows: &(impl Iterator<Item = &'a ConversionRow> + Clone),
            f: impl Fn(&'a ConversionRow) -> T,
        ) -> Vec<T> {
            rows.clone().map(f).collect()
        }
        Self {
            ids: col(&rows, |r| r.id),
            from_currencies: col(&rows, |r| r.from_currency.to_string()),
            to_currencies: col(&rows, |r| r.to_currency.to_string()),
            amounts: col(&rows, |r| r.amount.clone()),
            rates: col(&rows, |r| r.rate.clone()),
            results: col(&rows, |r| r.result.clone()),
            rates_as_of: col(&rows, |r| r.rate_as_of),
            providers: col(&rows, |r| r.rate_provider.clone()),
            from_quote_ids: col(&rows, |r| r.from_quote_id),
            to_quote_ids: col(&rows, |r| r.to_quote_id),
            stale: col(&rows, |r| r.stale_rate),
            from_minor_units: col(&rows, |r| r.from_minor_units),
            to_minor_units: col(&rows, |r| r.to_minor_units),
            quote_ids: col(&rows, |r| r.quote_id),
            reference_rates: col(&rows, |r| r.reference_rate.clone()),
            markups: col(&rows, |r| r.markup_bps),
            locks: col(&rows, |r| r.lock_bps),
            markup_amounts: col(&rows, |r| r.markup_amount.clone()),
            rate_sources: col(&rows, |r| r.rate_sources.join(",")),
        }
    }
}

/// Stores a batch and its conversions (all of one partner, created at one instant, in request
/// order) with two statements, however many conversions there are: the conversions travel as
/// one array per column and are unnested by PostgreSQL.
pub async fn insert_batch(
    conn: &mut PgConnection,
    batch_id: Uuid,
    partner: PartnerId,
    created_at: DateTime<Utc>,
    finalizes_at: DateTime<Utc>,
    rows: &[ConversionRow],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO conversion_batches (id, partner_id, item_count, created_at) VALUES ($1, $2, $3, $4)",
        batch_id,
        partner.as_uuid(),
        i32::try_from(rows.len()).unwrap_or(i32::MAX),
        created_at,
    )
    .execute(&mut *conn)
    .await?;
    let c = Columns::of(rows.iter());
    sqlx::query!(
        "INSERT INTO conversions (id, partner_id, from_currency, to_currency, amount, rate, result,
             rate_as_of, rate_provider, from_quote_id, to_quote_id, stale_rate, status, created_at,
             finalizes_at, from_minor_units, to_minor_units, quote_id, batch_id, batch_position,
             reference_rate, markup_bps, lock_bps, markup_amount, rate_sources)
         SELECT t.id, $2, t.from_currency, t.to_currency, t.amount, t.rate, t.result, t.rate_as_of,
                t.rate_provider, t.from_quote_id, t.to_quote_id, t.stale_rate, 'temporary', $3, $4,
                t.from_minor_units, t.to_minor_units, t.quote_id, $5, (t.position - 1)::integer,
                t.reference_rate, t.markup_bps, t.lock_bps, t.markup_amount,
                CASE WHEN t.rate_sources = '' THEN '{}'::text[]
                     ELSE string_to_array(t.rate_sources, ',') END
         FROM UNNEST($1::uuid[], $6::text[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[],
                     $11::timestamptz[], $12::text[], $13::int8[], $14::int8[], $15::bool[],
                     $16::int2[], $17::int2[], $18::uuid[], $19::numeric[], $20::int4[], $21::int4[],
                     $22::numeric[], $23::text[])
              WITH ORDINALITY AS t(id, from_currency, to_currency, amount, rate, result, rate_as_of,
                                   rate_provider, from_quote_id, to_quote_id, stale_rate,
                                   from_minor_units, to_minor_units, quote_id, reference_rate,
                                   markup_bps, lock_bps, markup_amount, rate_sources, position)",
        &c.ids,
        partner.as_uuid(),
        created_at,
        finalizes_at,
        batch_id,
        &c.from_currencies,
        &c.to_currencies,
        &c.amounts,
        &c.rates,
        &c.results,
        &c.rates_as_of,
        &c.providers,
        &c.from_quote_ids as &[Option<i64>],
        &c.to_quote_ids as &[Option<i64>],
        &c.stale,
        &c.from_minor_units,
        &c.to_minor_units,
        &c.quote_ids as &[Option<Uuid>],
        &c.reference_rates,
        &c.markups,
        &c.locks,
        &c.markup_amounts,
        &c.rate_sources,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A batch's conversions in request order (empty for an unknown batch).
pub async fn find_batch(db: &PgPool, batch_id: Uuid) -> Result<Vec<ConversionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversionRow,
        r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources
           FROM conversions WHERE batch_id = $1 ORDER BY batch_position"#,
        batch_id,
    )
    .fetch_all(db)
    .await
}

pub async fn find(db: &PgPool, id: Uuid) -> Result<Option<ConversionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversionRow,
        r#"SELECT id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources
           FROM conversions WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// Cancels a temporary conversion of `partner` whose holding period has not ended at `now`.
/// The holding period is checked in the same statement as the status, so a late finalize job
/// does not stretch the window: once `finalizes_at` has passed the conversion belongs to
/// finalize, even before the job has run. The condition on `status` makes cancel and finalize
/// mutually exclusive under the row lock, so exactly one of them wins.
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    partner: PartnerId,
    now: DateTime<Utc>,
) -> Result<Option<ConversionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversionRow,
        r#"UPDATE conversions SET status = 'cancelled', cancelled_at = $3
           WHERE id = $1 AND partner_id = $2 AND status = 'temporary' AND finalizes_at > $3
           RETURNING id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources"#,
        id,
        partner.as_uuid(),
        now,
    )
    .fetch_optional(conn)
    .await
}

/// Marks up to `batch` due temporary conversions permanent and returns them. Rows locked by a
/// concurrent cancel or another finalizer are skipped and picked up by the next batch.
pub async fn finalize_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<ConversionRow>, sqlx::Error> {
    sqlx::query_as!(
        ConversionRow,
        r#"UPDATE conversions SET status = 'permanent', finalized_at = $1
           WHERE id IN (
               SELECT id FROM conversions
               WHERE status = 'temporary' AND finalizes_at <= $1
               ORDER BY finalizes_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED)
             AND status = 'temporary'
           RETURNING id, partner_id, from_currency AS "from_currency: CurrencyCode",
                  to_currency AS "to_currency: CurrencyCode", amount, from_minor_units,
                  to_minor_units, rate, result, rate_as_of, rate_provider, from_quote_id,
                  to_quote_id, stale_rate, status AS "status: Status", created_at, finalizes_at,
                  finalized_at, cancelled_at, quote_id,
                  coalesce(reference_rate, rate) AS "reference_rate!", markup_bps, lock_bps,
                  markup_amount, rate_sources"#,
        now,
        batch,
    )
    .fetch_all(conn)
    .await
}

impl From<ConversionRow> for ConversionView {
    fn from(r: ConversionRow) -> Self {
        Self {
            id: r.id,
            partner_id: r.partner_id,
            from: r.from_currency,
            to: r.to_currency,
            // PostgreSQL may hand NUMERIC back without trailing zeros; show money at the
            // currency's scale ("5.00", not "5").
            amount: money::round_to_minor_units(&r.amount, r.from_minor_units),
            rate: money::normalized(&r.rate),
            result: money::round_to_minor_units(&r.result, r.to_minor_units),
            rate_as_of: r.rate_as_of,
            rate_provider: r.rate_provider.clone(),
            rate_sources: r.rate_sources.clone(),
            stale_rate: r.stale_rate,
            status: r.status,
            created_at: r.created_at,
            finalizes_at: r.finalizes_at,
            finalized_at: r.finalized_at,
            cancelled_at: r.cancelled_at,
            quote_id: r.quote_id,
            rate_details: crate::rates::pricing::RateBreakdown {
                reference_rate: money::normalized(&r.reference_rate),
                markup_bps: u32::try_from(r.markup_bps).unwrap_or_default(),
                lock_bps: u32::try_from(r.lock_bps).unwrap_or_default(),
                rate: money::normalized(&r.rate),
                markup_amount: Some(money::round_to_minor_units(
                    &r.markup_amount,
                    r.to_minor_units,
                )),
                provider: r.rate_provider,
                sources: r.rate_sources,
                reference_as_of: r.rate_as_of,
            },
        }
    }
}
