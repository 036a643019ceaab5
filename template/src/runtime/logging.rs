//! Logging through `tracing`, as text for people or JSON for log shippers.
//!
//! Logs go to stderr so that `analyze --json` can own stdout.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?} (expected text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Turns a level (Python's names are accepted too: `WARNING`, `CRITICAL`)
/// or a tracing filter directive into a filter.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    let directive = match level.trim().to_ascii_lowercase().as_str() {
        "warning" => "warn".to_owned(),
        "critical" | "fatal" => "error".to_owned(),
        "" => "info".to_owned(),
        "error" | "warn" | "info" | "debug" | "trace" | "off" => level.trim().to_ascii_lowercase(),
        // Anything else must look like a filter (`info,hyper=warn`), not a typo.
        other if other.contains('=') || other.contains(',') => level.trim().to_owned(),
        _ => {
            return Err(format!(
                "bad log level {level:?} (expected error, warn, info, debug, trace or a filter like info,hyper=warn)"
            ))
        }
    };
    EnvFilter::try_new(&directive).map_err(|err| format!("bad log level {level:?}: {err}"))
}

/// Installs the global subscriber. Safe to call more than once (later calls
/// are ignored), which keeps tests simple.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}
