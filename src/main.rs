//! `currency-conversion`: the one binary. `serve` (default) runs the HTTP API, the scheduler and
//! the workers according to `--role`; the other commands are for operators and scripts.

use anyhow::Context;
use clap::{Parser, Subcommand};

use currency_conversion::auth::{self, Role};
use currency_conversion::clock::Clock;
use currency_conversion::settings;
use currency_conversion::startup::Application;
use currency_conversion::state::{AppState, ProcessRole};

#[derive(Parser)]
#[command(name = "currency-conversion", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create and migrate the database, then serve (the default command).
    Serve {
        /// Which pieces this process runs.
        #[arg(long, value_enum, default_value_t = ProcessRole::All)]
        role: ProcessRole,
    },
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate,
    /// Create demo data for trying the service: in `local`, a demo admin and partner (printed
    /// once). Idempotent.
    Seed,
    /// Manage users from scripts.
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
    /// Print the OpenAPI document (the one served at `/api-docs/openapi.json`), to generate a
    /// client without a running server.
    Openapi,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from `CCS_PASSWORD`, or else from the first line of
    /// standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "partner"])]
        role: String,
        /// Display name (defaults to the email).
        #[arg(long)]
        name: Option<String>,
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
            let rates = currency_conversion::rates::Rates::new(&state);
            currency_conversion::seed::run(&state, &rates).await?;
        }
        Command::User {
            command: UserCommand::Create { email, role, name },
        } => {
            let password = match std::env::var("CCS_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            let state = AppState::new(settings, Clock::system())?;
            let role = Role::parse(&role).context("--role must be admin or partner")?;
            let user = auth::service::create_user(
                &state,
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
            let rates = currency_conversion::rates::Rates::new(&state);
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
