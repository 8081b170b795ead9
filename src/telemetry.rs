//! Logging: human-readable lines locally (coloured only on a terminal), JSON lines in
//! production. Every line written while a request is handled carries its request id (the
//! `request` span set up in `middleware`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber, writing to stdout. Safe to call more than once (later calls
/// are ignored), which the tests rely on.
pub fn init(settings: &LogSettings) {
    // Colour codes are for a person at a terminal; in a file or a pipe they are noise.
    let ansi = std::io::stdout().is_terminal();
    init_writing_to(settings, std::io::stdout, ansi);
}

/// [`init`], with the lines going to `writer` (the tests read what the service logs).
pub fn init_writing_to<W>(settings: &LogSettings, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // `RUST_LOG` is the operator's override of the moment; when it does not parse, the
    // configured filter (checked at load) applies.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| settings.level.to_env_filter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_span_events(FmtSpan::NONE);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
