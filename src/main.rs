//! `currency-conversion`: the one binary. `serve` (default) runs the HTTP API, the scheduler and
//! the workers according to `--role`; the other commands are for operators and scripts.

use anyhow::Context;
use clap::{Parser, Subcommand};

use currency_conversion::auth::{self, Role};
use currency_conversion::clock::Clock;
use currency_conversion::settings;
use currency_conversion::startup::Application;
use currency_conversion::state::{AppState, ProcessRole};

/// Shown under every `--help`: where settings come from.
const SETTINGS_HELP: &str = "\
Settings:
  Read from settings/base.toml, then settings/{APP_ENV}.toml (APP_ENV: local (default), test,
  production), then environment variables CCS__SECTION__KEY, e.g.
    CCS__SERVER__PORT=9000  CCS__RATES__PROVIDER=openexchangerates  CCS__RATES__API_KEY=...
  plus DATABASE_URL, REDIS_URL and JWT_SECRET. The settings folder is found relative to the
  working directory; set CCS_SETTINGS_DIR to run from elsewhere. Log level: RUST_LOG.
  A CCS__ variable or file key that is not a setting stops start-up, naming the nearest one;
  `currency-conversion settings` lists them all with their values and origins.";

#[derive(Parser)]
#[command(
    name = "currency-conversion",
    version,
    about = "Currency conversion service: HTTP API, rates fetching, background tasks.",
    long_about = "Currency conversion service: HTTP API, rates fetching, background tasks.\n\n\
        `serve` (the default) creates the database if needed and applies pending migrations \
        before serving; `migrate` does only that, for deployments that migrate in a separate \
        step. `seed` adds demo data (and also migrates).",
    after_help = SETTINGS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create and migrate the database if needed, then serve (the default command).
    #[command(after_help = SETTINGS_HELP)]
    Serve {
        /// Which pieces this process runs: all, or only the HTTP api, the task workers or the
        /// cron scheduler (to scale them as separate processes sharing PostgreSQL and Redis).
        #[arg(long, value_enum, default_value_t = ProcessRole::All)]
        role: ProcessRole,
    },
    /// Create the database if needed and apply pending migrations, then exit (serve and seed
    /// do this themselves; use it when deployments migrate in a separate step).
    #[command(after_help = SETTINGS_HELP)]
    Migrate,
    /// Create demo data for trying the service (migrating first): the default currencies, a
    /// year of embedded ECB rates when none are stored and, in `local`, a demo admin and
    /// partner whose passwords are printed once. Idempotent.
    #[command(after_help = SETTINGS_HELP)]
    Seed,
    /// Manage users from scripts: create one, or set a forgotten password.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Exchange rates: fetch now, import history.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
    /// Exit 0 when the local server answers `/health/live` (container HEALTHCHECK).
    Healthcheck,
    /// Print the effective settings, one `key = value` line each with where it came from:
    /// default (settings/base.toml), file (settings/{APP_ENV}.toml) or environment (the
    /// variable's name). Secrets are redacted. Fails, as start-up does, on invalid settings.
    #[command(after_help = SETTINGS_HELP)]
    Settings,
    /// Print the OpenAPI document (the one served at `/api-docs/openapi.json`), to generate a
    /// client without a running server.
    Openapi,
}

/// How the CLI takes a password: never as an argument (it would be in the shell history and
/// the process list).
const PASSWORD_HELP: &str = "\
Password:
  Read from the CCS_PASSWORD environment variable, or else from the first line of standard
  input. 12 to 128 characters, and not guessable: the zxcvbn estimator must score it 3 of 4
  (common passwords, the account's own email or name, sequences and repeats are refused).";

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (admin or partner). Refuses an email that already has an account; use
    /// `user set-password` for a lost password.
    #[command(after_help = PASSWORD_HELP)]
    Create {
        /// Login email; compared case-insensitively, must be unique.
        #[arg(long)]
        email: String,
        /// `admin` manages partners, currencies, tasks and the monitor; `partner` converts
        /// amounts and reads its own history over the API.
        #[arg(long, value_parser = ["admin", "partner"])]
        role: String,
        /// Display name (defaults to the email).
        #[arg(long)]
        name: Option<String>,
    },
    /// Set a user's password (admin or partner), e.g. a demo password printed once by `seed`
    /// and lost. Ends the user's other sessions (refresh tokens are revoked) and lifts the
    /// account's login lock, so the new password works at once.
    #[command(after_help = PASSWORD_HELP)]
    SetPassword {
        /// Email of the existing user.
        #[arg(long)]
        email: String,
    },
    /// Lift a user's login lock (too many failed logins: 429 until the window ends) without
    /// changing the password.
    Unlock {
        /// Email of the existing user.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum RatesCommand {
    /// Fetch the latest rates now, with the server's settings, store them and print the report.
    Fetch,
    /// Import the ECB history CSV (`eurofxref-hist.csv`) as provider `ecb`. Idempotent.
    ImportEcb {
        /// Path of the CSV file.
        file: std::path::PathBuf,
    },
}

/// The password for `user create` / `user set-password`: `CCS_PASSWORD`, else one line of
/// standard input.
fn read_password() -> anyhow::Result<String> {
    match std::env::var("CCS_PASSWORD") {
        Ok(p) => Ok(p),
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            Ok(line.trim_end_matches(['\r', '\n']).to_owned())
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = settings::load()?;
    currency_conversion::telemetry::init(&settings.log);
    // reqwest and sqlx are built without a default TLS provider; pick ring once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command.unwrap_or(Command::Serve {
        role: ProcessRole::All,
    }) {
        Command::Serve { role } => {
            tracing::info!(
                environment = settings.environment.as_str(),
                ?role,
                "starting"
            );
            if role.serves_http() {
                let app = Application::build(settings, Clock::system()).await?;
                tracing::info!(port = app.port(), "listening");
                start_up_summary(app.state()).await;
                app.run(role).await?;
            } else {
                currency_conversion::startup::run_background_only(settings, Clock::system(), role)
                    .await?;
            }
        }
        Command::Healthcheck => {
            let host = match settings.server.host.as_str() {
                "0.0.0.0" | "::" => "127.0.0.1",
                other => other,
            };
            let url = format!("http://{host}:{}/health/live", settings.server.port);
            let res = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .with_context(|| format!("{url} did not answer"))?;
            anyhow::ensure!(res.status().is_success(), "{url} answered {}", res.status());
        }
        Command::Seed => {
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            let state = AppState::new(settings, Clock::system())?;
            let rates = currency_conversion::rates::Rates::of(&state);
            currency_conversion::seed::run(&state, &rates).await?;
        }
        Command::User {
            command: UserCommand::SetPassword { email },
        } => {
            let password = read_password()?;
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            let state = AppState::new(settings, Clock::system())?;
            let auth = currency_conversion::startup::auth(&state);
            let user = auth::service::set_password_by_email(&auth, &email, &password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "password set for {} {} ({}); their other sessions are ended",
                user.role.as_str(),
                user.email,
                user.id
            );
        }
        Command::User {
            command: UserCommand::Unlock { email },
        } => {
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            let state = AppState::new(settings, Clock::system())?;
            let auth = currency_conversion::startup::auth(&state);
            let was_locked = auth::service::unlock_login(&auth, &email)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if was_locked {
                println!("login lock lifted for {email}");
            } else {
                println!("{email} had no failed logins counted; nothing to lift");
            }
        }
        Command::User {
            command: UserCommand::Create { email, role, name },
        } => {
            let password = read_password()?;
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            let state = AppState::new(settings, Clock::system())?;
            let role = Role::parse(&role).context("--role must be admin or partner")?;
            let user = auth::service::create_user(
                &currency_conversion::startup::auth(&state),
                &email,
                &password,
                role,
                name.as_deref().unwrap_or(&email),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} {} ({})",
                user.role.as_str(),
                user.email,
                user.id
            );
        }
        Command::Rates { command } => {
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            let state = AppState::new(settings, Clock::system())?;
            let rates = currency_conversion::rates::Rates::of(&state);
            match command {
                RatesCommand::Fetch => {
                    let report = currency_conversion::rates::fetch_and_store(&rates).await?;
                    print!("{report}");
                }
                RatesCommand::ImportEcb { file } => {
                    let input = std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?;
                    let report = currency_conversion::rates::import::import_ecb(
                        &rates,
                        std::io::BufReader::new(input),
                    )
                    .await?;
                    println!(
                        "imported {} days: {} new day snapshots, {} new quotes; currencies added as historic: {:?}",
                        report.days,
                        report.snapshots_inserted,
                        report.quotes_inserted,
                        report.currencies_added
                    );
                }
            }
        }
        Command::Settings => {
            print!("{}", settings::describe()?);
        }
        Command::Openapi => {
            let document = currency_conversion::openapi::document();
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        Command::Migrate => {
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            println!("database is migrated");
        }
    }
    Ok(())
}

/// What a new user needs to know at start: which rates provider is configured and what the
/// service serves until it answers (the first fetch's outcome follows in one line), and where
/// the demo accounts are.
async fn start_up_summary(state: &AppState) {
    use currency_conversion::rates::service::{describe_providers, describe_served_rates};
    let providers = describe_providers(&state.settings.rates);
    match describe_served_rates(&currency_conversion::rates::Rates::of(state)).await {
        Ok(served) => tracing::info!("rates provider {providers}; {served} until a fetch succeeds"),
        Err(e) => tracing::warn!(error = format!("{e:#}"), "reading the stored rates failed"),
    }
    match currency_conversion::seed::demo_accounts_reminder(state).await {
        Ok(Some(reminder)) => tracing::info!("{reminder}"),
        Ok(None) => {}
        Err(e) => tracing::warn!(
            error = format!("{e:#}"),
            "looking up the demo accounts failed"
        ),
    }
}
