//! Configuration: a TOML file, then environment variables over it.
//!
//! Every setting has a default, so an engine runs with no file at all. The
//! file is `engine.toml` in the working directory when present, or the one
//! named by `--config` / `ENGINE_CONFIG`. Errors name the file and the key
//! (or the environment variable) that is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::logging::LogFormat;

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "engine.toml";

/// All settings of an engine. `S` is the scanner's own `[scanner]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config<S> {
    /// `[server]`: the webhook endpoint.
    pub server: ServerConfig,
    /// `[bounties]`: how bounties are processed.
    pub bounties: BountyConfig,
    /// `[fetch]`: how artifacts are downloaded.
    pub fetch: FetchConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[scanner]`: the scanner's settings.
    pub scanner: S,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Env: `ENGINE_LISTEN`.
    pub listen: SocketAddr,
    /// The webhook secret shared with PolySwarm. Env: `WEBHOOK_SECRET`
    /// (or `PSENGINE_WEBHOOK_SECRET`). Prefer the environment to the file.
    pub webhook_secret: Option<String>,
    /// Largest webhook body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            webhook_secret: None,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// `[bounties]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BountyConfig {
    /// Bounties fetched and scanned at the same time. Env: `ENGINE_CONCURRENCY`.
    pub concurrency: usize,
    /// Bounties accepted and waiting for a worker. When this many wait, new
    /// bounties are refused with 503 (and logged) instead of being accepted
    /// and answered late. Env: `ENGINE_QUEUE`.
    pub queue_capacity: usize,
    /// Lifetime assumed for a bounty without `expiration`, in seconds.
    pub default_expiration_secs: u64,
    /// Time kept back before `expiration` to deliver the verdict, in seconds:
    /// a scan still running then is abandoned and answered `unknown`.
    pub deadline_margin_secs: f64,
    /// Whether `file://` artifact URIs are allowed (local tools and tests only).
    pub allow_file_uris: bool,
    /// Timeout of one verdict delivery attempt, in seconds.
    pub delivery_timeout_secs: f64,
}

impl Default for BountyConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            queue_capacity: 256,
            default_expiration_secs: 90,
            deadline_margin_secs: 5.0,
            allow_file_uris: false,
            delivery_timeout_secs: 10.0,
        }
    }
}

impl BountyConfig {
    /// The safety margin as a `Duration`.
    pub fn deadline_margin(&self) -> Duration {
        Duration::from_secs_f64(self.deadline_margin_secs)
    }

    /// The delivery timeout as a `Duration`.
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.delivery_timeout_secs)
    }
}

/// `[fetch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Largest artifact downloaded, in bytes; larger ones are answered `unknown`.
    pub max_artifact_bytes: u64,
    /// Connect timeout, in seconds.
    pub connect_timeout_secs: f64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            max_artifact_bytes: 64 * 1024 * 1024,
            connect_timeout_secs: 10.0,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn` (or `warning`), `info`, `debug`, `trace`, or a tracing
    /// filter such as `info,hyper=warn`. Env: `LOG_LEVEL`.
    pub level: String,
    /// `text` or `json`. Env: `LOG_FORMAT`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl<S: DeserializeOwned + Default> Config<S> {
    /// Reads `path`, or [`DEFAULT_CONFIG_FILE`] when it exists, or nothing.
    pub fn from_file(path: Option<&Path>) -> anyhow::Result<Self> {
        let path: PathBuf = match path {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => PathBuf::from(DEFAULT_CONFIG_FILE),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in config file {}", path.display()))
    }

    /// Parses TOML text; an error names the offending key.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            let message = inner.message().trim().to_owned();
            match inner.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    anyhow::anyhow!("key `{key}` (line {line}): {message}")
                }
                None => anyhow::anyhow!("key `{key}`: {message}"),
            }
        })
    }
}

impl<S> Config<S> {
    /// Applies the runtime's environment variables over the file's values.
    pub fn apply_env(&mut self) -> anyhow::Result<()> {
        env_override("ENGINE_LISTEN", &mut self.server.listen)?;
        let mut secret = String::new();
        env_override("PSENGINE_WEBHOOK_SECRET", &mut secret)?;
        env_override("WEBHOOK_SECRET", &mut secret)?;
        if !secret.is_empty() {
            self.server.webhook_secret = Some(secret);
        }
        env_override("ENGINE_CONCURRENCY", &mut self.bounties.concurrency)?;
        env_override("ENGINE_QUEUE", &mut self.bounties.queue_capacity)?;
        env_override("LOG_LEVEL", &mut self.log.level)?;
        env_override("LOG_FORMAT", &mut self.log.format)?;
        self.validate()
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.bounties.concurrency == 0 {
            bail!("bounties.concurrency (ENGINE_CONCURRENCY) must be at least 1");
        }
        let margin = self.bounties.deadline_margin_secs;
        if !(margin.is_finite() && margin >= 0.0) {
            bail!("bounties.deadline_margin_secs must be a non-negative number, not {margin}");
        }
        let delivery = self.bounties.delivery_timeout_secs;
        if !(delivery.is_finite() && delivery > 0.0) {
            bail!("bounties.delivery_timeout_secs must be a positive number, not {delivery}");
        }
        let connect = self.fetch.connect_timeout_secs;
        if !(connect.is_finite() && connect > 0.0) {
            bail!("fetch.connect_timeout_secs must be a positive number, not {connect}");
        }
        Ok(())
    }
}

/// Replaces `target` with the parsed value of environment variable `var`, if
/// set. An empty variable counts as unset. The error names the variable.
pub fn env_override<T>(var: &str, target: &mut T) -> anyhow::Result<()>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(var) {
        Ok(value) if value.trim().is_empty() => Ok(()),
        Ok(value) => {
            *target = value
                .trim()
                .parse()
                .map_err(|err| anyhow::anyhow!("environment variable {var}={value:?}: {err}"))?;
            Ok(())
        }
        Err(std::env::VarError::NotPresent) => Ok(()),
        Err(std::env::VarError::NotUnicode(_)) => bail!("environment variable {var} is not UTF-8"),
    }
}
