//! Logs to stderr (containers collect it), as text; the level from
//! `ASYA_LOG_LEVEL` (`info`, `debug`, ...), else `RUST_LOG` (full filter
//! directives), else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("ASYA_LOG_LEVEL")
        .ok()
        .filter(|level| !level.is_empty())
        .map(|level| EnvFilter::new(level.to_lowercase()))
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
