//! `currency-conversion`: the one binary. `serve` (default) runs the HTTP API, the scheduler and
//! the workers according to `--role`; the other commands are for operators and scripts.

use anyhow::Context;
use clap::{Parser, Subcommand};

use currency_conversion::clock::Clock;
use currency_conversion::settings;
use currency_conversion::startup::{Application, Role};

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
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate,
    /// Exit 0 when the local server answers `/health/live` (container HEALTHCHECK).
    Healthcheck,
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
    match cli.command.unwrap_or(Command::Serve { role: Role::All }) {
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
        Command::Migrate => {
            currency_conversion::db::create_and_migrate(&settings.database).await?;
            println!("database is migrated");
        }
    }
    Ok(())
}
