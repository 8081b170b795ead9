//! Fixtures so that a new user can try the service at once, even offline. Idempotent: running
//! it twice changes nothing.
//!
//! - The default currencies (every currency of the ECB reference feed, plus EGP).
//! - When no rates are stored yet: one real ECB daily publication (embedded in the binary), so
//!   that rates and conversions work before the first fetch succeeds. They are old, so they are
//!   flagged `stale`; the scheduled fetch replaces them when a provider is reachable.
//! - In `local` only: a demo admin and a demo partner, with passwords printed once. Elsewhere
//!   create users with `currency-conversion user create`.

use crate::auth::Role;
use crate::auth::service::{AuthError, create_user};
use crate::settings::Environment;
use crate::state::AppState;

pub const DEMO_ADMIN_EMAIL: &str = "admin@example.com";
pub const DEMO_PARTNER_EMAIL: &str = "partner@example.com";

pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let added = crate::currencies::service::seed_defaults(&state.db, state.clock.now())
        .await
        .map_err(|e| anyhow::anyhow!("seeding currencies: {e}"))?;
    println!("seed: {added} default currencies added");
    seed_fixture_rates(state).await?;
    if state.settings.environment == Environment::Local {
        for (email, role, name) in [
            (DEMO_ADMIN_EMAIL, Role::Admin, "Demo admin"),
            (DEMO_PARTNER_EMAIL, Role::Partner, "Demo partner"),
        ] {
            let password = crate::auth::tokens::new_refresh_token()[..20].to_owned();
            match create_user(state, email, &password, role, name).await {
                Ok(_) => println!(
                    "seed: created {} {email} with password {password}",
                    role.as_str()
                ),
                Err(AuthError::EmailTaken) => {
                    println!(
                        "seed: {} {email} already exists (password unchanged)",
                        role.as_str()
                    )
                }
                Err(e) => return Err(anyhow::anyhow!("seeding {email}: {e}")),
            }
        }
    }
    Ok(())
}

/// The ECB's daily reference rates of one day, in the ECB's daily CSV layout.
const FIXTURE_RATES: &str = include_str!("fixtures/ecb-eurofxref-daily.csv");

async fn seed_fixture_rates(state: &AppState) -> anyhow::Result<()> {
    use crate::rates::ecb_csv::EcbCsvReader;
    let state = &crate::rates::Rates::new(state);
    use crate::rates::provider::{ProviderKind, Snapshot};

    if crate::rates::service::any_rates_stored(state).await? {
        println!("seed: rates already stored; fixture rates not needed");
        return Ok(());
    }
    let mut reader = EcbCsvReader::new(FIXTURE_RATES.as_bytes())?;
    let (date, quotes) = reader
        .next()
        .ok_or_else(|| anyhow::anyhow!("the embedded rates fixture is empty"))??;
    let snapshot = Snapshot {
        provider: ProviderKind::Ecb,
        base: crate::currencies::CurrencyCode::parse("EUR")?,
        as_of: crate::rates::import::publication_instant(date),
        quotes: quotes.into_iter().collect(),
        ignored_codes: 0,
        missing: Vec::new(),
    };
    let known = crate::rates::service::known_currencies(state).await?;
    let report =
        crate::rates::service::store_snapshot(state, snapshot, &known, &[], Vec::new()).await?;
    println!(
        "seed: stored {} ECB reference rates of {date} (stale until the first fetch)",
        report.changed
    );
    Ok(())
}
