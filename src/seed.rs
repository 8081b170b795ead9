//! Fixtures so that a new user can try the service at once, even offline. Idempotent: running
//! it twice changes nothing.
//!
//! - The default currencies (every currency the ECB quotes today, plus EGP); currencies that
//!   have been replaced (BGN since 2026-01-01) are kept as historic, never offered.
//! - When no rates are stored yet: a year of real ECB publications (embedded in the binary),
//!   stored as provider `seed`, so that rates, conversions, charts, `rates/at` and
//!   `rates/series` work before the first fetch succeeds. They are old, so they are flagged
//!   `stale`; the scheduled fetch supersedes them when a provider is reachable.
//! - In `local` only: a demo admin and a demo partner, with passwords printed once. Elsewhere
//!   create users with `currency-conversion user create`.

use anyhow::Context;

use crate::auth::Role;
use crate::auth::service::{AuthError, create_user};
use crate::rates::Rates;
use crate::settings::Environment;
use crate::state::AppState;

pub const DEMO_ADMIN_EMAIL: &str = "admin@example.com";
pub const DEMO_PARTNER_EMAIL: &str = "partner@example.com";

pub async fn run(state: &AppState, rates: &Rates) -> anyhow::Result<()> {
    let added = crate::currencies::service::seed_defaults(&state.db, state.clock.now())
        .await
        .map_err(|e| anyhow::anyhow!("seeding currencies: {e}"))?;
    println!("seed: {added} default currencies added");
    seed_fixture_rates(rates).await?;
    if state.settings.environment == Environment::Local {
        let auth = crate::startup::auth(state);
        for (email, role, name) in [
            (DEMO_ADMIN_EMAIL, Role::Admin, "Demo admin"),
            (DEMO_PARTNER_EMAIL, Role::Partner, "Demo partner"),
        ] {
            let password = crate::auth::tokens::new_refresh_token()[..20].to_owned();
            match create_user(&auth, email, &password, role, name).await {
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

/// The start-up reminder of the demo accounts, when `seed` created them (in `local`): their
/// passwords were printed once, at the top of a log that has scrolled since, so say where they
/// are and how to get back in.
pub async fn demo_accounts_reminder(state: &AppState) -> anyhow::Result<Option<String>> {
    if state.settings.environment != Environment::Local {
        return Ok(None);
    }
    let mut present = Vec::new();
    for email in [DEMO_ADMIN_EMAIL, DEMO_PARTNER_EMAIL] {
        let parsed = crate::auth::domain::Email::parse(email)
            .map_err(|m| anyhow::anyhow!("{email}: {m}"))?;
        if crate::auth::store::find_by_email(&state.db, &parsed)
            .await?
            .is_some()
        {
            present.push(email);
        }
    }
    if present.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "demo accounts {} (passwords printed once by `seed`); lost or locked out: \
         CCS_PASSWORD='a new passphrase' currency-conversion user set-password --email {}",
        present.join(" and "),
        present.last().copied().unwrap_or(DEMO_PARTNER_EMAIL)
    )))
}

/// A year of the ECB's euro reference rates (2025-10-31 to 2026-10-30, every publication day),
/// cut from the ECB's `eurofxref-hist.csv` in its own layout, keeping the currencies quoted in
/// that year. A year lets charts, `rates/at` and `rates/series` work on a machine that has never
/// reached a provider.
const SEED_HISTORY: &str = include_str!("fixtures/ecb-eurofxref-hist-last-year.csv");

async fn seed_fixture_rates(state: &Rates) -> anyhow::Result<()> {
    use crate::rates::import::{SEED_PROVIDER, import_ecb_as};

    if crate::rates::service::any_rates_stored(state).await? {
        println!("seed: rates already stored; the embedded history is not needed");
        return Ok(());
    }
    let report = import_ecb_as(state, SEED_PROVIDER, SEED_HISTORY.as_bytes())
        .await
        .context("storing the embedded ECB history")?;
    println!(
        "seed: stored {} days of ECB reference rates (embedded, provider `seed`, newest {}); \
         they count as stale until a provider answers",
        report.days,
        seed_history_newest().map_or_else(|| "unknown".to_owned(), |d| d.to_string()),
    );
    Ok(())
}

/// The newest publication day of the embedded history.
pub fn seed_history_newest() -> Option<chrono::NaiveDate> {
    let line = SEED_HISTORY.lines().nth(1)?;
    chrono::NaiveDate::parse_from_str(line.split(',').next()?, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_history_is_a_year_of_ecb_publications_newest_first() {
        let reader = crate::rates::ecb_csv::EcbCsvReader::new(SEED_HISTORY.as_bytes()).unwrap();
        let days: Vec<chrono::NaiveDate> = reader.map(|d| d.unwrap().0).collect();
        assert!(days.len() > 250, "{} days", days.len());
        assert!(days.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(seed_history_newest(), Some(days[0]));
        assert!((days[0] - days[days.len() - 1]).num_days() >= 360);
    }

    #[test]
    fn embedded_history_stops_quoting_bgn_when_bulgaria_adopted_the_euro() {
        let euro_day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let bgn = crate::currencies::CurrencyCode::parse("BGN").unwrap();
        let reader = crate::rates::ecb_csv::EcbCsvReader::new(SEED_HISTORY.as_bytes()).unwrap();
        for day in reader {
            let (date, quotes) = day.unwrap();
            assert_eq!(
                quotes.iter().any(|(c, _)| *c == bgn),
                date < euro_day,
                "{date}"
            );
        }
    }
}
