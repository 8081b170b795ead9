//! Fixtures so that a new user can try the service at once. Idempotent: running it twice
//! changes nothing. Demo accounts exist only in `local`; elsewhere create users with
//! `currency-conversion user create`.

use crate::auth::Role;
use crate::auth::service::{AuthError, create_user};
use crate::settings::Environment;
use crate::startup::AppState;

pub const DEMO_ADMIN_EMAIL: &str = "admin@example.com";
pub const DEMO_PARTNER_EMAIL: &str = "partner@example.com";

pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let added = crate::currencies::service::seed_defaults(&state.db, state.clock.now())
        .await
        .map_err(|e| anyhow::anyhow!("seeding currencies: {e}"))?;
    println!("seed: {added} default currencies added");
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
