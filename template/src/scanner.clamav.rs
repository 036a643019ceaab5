//! The scanner: asks a ClamAV daemon (clamd) about each artifact. YOUR FILE.
//!
//! This is the ClamAV example from PolySwarm's tutorial, in Rust: artifacts
//! are streamed to clamd over its socket (`CLAMD_HOST`, `CLAMD_PORT`,
//! `CLAMD_TIMEOUT`), and its answer becomes the verdict. The clamd client is
//! in `src/clamd.rs`; the runtime (`src/runtime/`) takes care of PolySwarm.
//!
//! Walk through the `CUSTOMIZE_HERE(n)` markers in order; the README explains
//! each one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;

use crate::clamd::{Address, ClamdClient, ScanReply, Version};
use crate::runtime::config::env_override;
use crate::runtime::{Analysis, Artifact, ArtifactKind, Scanner};

/// The scanner this engine runs.
pub type EngineScanner = ClamAvScanner;

// CUSTOMIZE_HERE(1): who you are and what you analyse. VENDOR and PRODUCT go
// into every verdict's metadata; clamd scans bytes, so this engine analyses
// files (URLs are answered `unknown` without calling `scan`).
const VENDOR: &str = "{{author_org}}";
const PRODUCT: &str = "{{engine_slug}}";
const SUPPORTED: &[ArtifactKind] = &[ArtifactKind::File];

/// Signatures clamd uses to say it hit one of its scan limits, not malware.
const LIMIT_SIGNATURE_PREFIX: &str = "Heuristics.Limits.Exceeded";

/// The `[scanner]` table of `engine.toml`: where clamd is and the limits to
/// keep with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    // CUSTOMIZE_HERE(2): clamd's address and limits. Keep `max_stream_bytes`
    // at or below clamd's StreamMaxLength (and that at or below MaxFileSize
    // and MaxScanSize, or clamd silently scans only part of the stream), and
    // `max_connections` at or below clamd's MaxThreads.
    /// `CLAMD_HOST`: a host name, or a filesystem path for the Unix socket.
    pub host: String,
    /// `CLAMD_PORT`.
    pub port: u16,
    /// `CLAMD_TIMEOUT`: seconds for one clamd command.
    pub timeout_secs: f64,
    /// `CLAMD_MAX_STREAM`: largest artifact sent to clamd, in bytes.
    pub max_stream_bytes: u64,
    /// `CLAMD_MAX_CONNECTIONS`: clamd commands in flight at once.
    pub max_connections: usize,
    /// How long setup waits for clamd to come up, in seconds.
    pub startup_timeout_secs: f64,
    /// How often clamd's version is read again, in seconds.
    pub version_refresh_secs: f64,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 3310,
            timeout_secs: 30.0,
            max_stream_bytes: 25 * 1024 * 1024,
            max_connections: 10,
            startup_timeout_secs: 60.0,
            version_refresh_secs: 600.0,
        }
    }
}

/// Scans artifacts with clamd.
#[derive(Debug)]
pub struct ClamAvScanner {
    client: ClamdClient,
    startup_timeout: Duration,
    version_refresh: Duration,
    /// clamd's version, and when it was read.
    version: Mutex<Option<(Version, Instant)>>,
}

impl ClamAvScanner {
    /// The clamd client, for tests and tools.
    pub fn client(&self) -> &ClamdClient {
        &self.client
    }

    /// The cached version, read again when stale. A failed refresh keeps the
    /// old one: the version is metadata, not a reason to fail a scan.
    async fn version(&self) -> Option<Version> {
        let cached = self.version.lock().expect("version lock").clone();
        match cached {
            Some((version, read_at)) if read_at.elapsed() < self.version_refresh => Some(version),
            stale => match self.client.version().await {
                Ok(version) => {
                    *self.version.lock().expect("version lock") =
                        Some((version.clone(), Instant::now()));
                    Some(version)
                }
                Err(err) => {
                    tracing::debug!(error = %err, "clamd VERSION failed");
                    stale.map(|(version, _)| version)
                }
            },
        }
    }
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        bail!("scanner.{name} must be a positive number of seconds, not {value}")
    }
}

impl Scanner for ClamAvScanner {
    type Config = ScannerConfig;

    const SUPPORTED: &'static [ArtifactKind] = SUPPORTED;
    const VENDOR: &'static str = VENDOR;
    const PRODUCT: &'static str = PRODUCT;

    fn new(config: ScannerConfig) -> anyhow::Result<Self> {
        if config.max_connections == 0 {
            bail!("scanner.max_connections (CLAMD_MAX_CONNECTIONS) must be at least 1");
        }
        let client = ClamdClient::new(
            Address::new(&config.host, config.port),
            seconds("timeout_secs", config.timeout_secs)?,
            config.max_stream_bytes,
            config.max_connections,
        );
        Ok(Self {
            client,
            startup_timeout: seconds("startup_timeout_secs", config.startup_timeout_secs)?,
            version_refresh: seconds("version_refresh_secs", config.version_refresh_secs)?,
            version: Mutex::new(None),
        })
    }

    fn apply_env(config: &mut ScannerConfig) -> anyhow::Result<()> {
        env_override("CLAMD_HOST", &mut config.host)?;
        env_override("CLAMD_PORT", &mut config.port)?;
        env_override("CLAMD_TIMEOUT", &mut config.timeout_secs)?;
        env_override("CLAMD_MAX_STREAM", &mut config.max_stream_bytes)?;
        env_override("CLAMD_MAX_CONNECTIONS", &mut config.max_connections)
    }

    async fn setup(&self) -> anyhow::Result<()> {
        // CUSTOMIZE_HERE(3): wait for the backend. clamd loads its signatures
        // before it opens its socket, so "connection refused" at start means
        // "still loading": retry within the startup budget.
        let started = Instant::now();
        loop {
            match self.client.ping().await {
                Ok(()) => break,
                Err(err) if started.elapsed() >= self.startup_timeout => {
                    bail!(
                        "clamd at {} did not answer PING within {:?}; last error: {err}",
                        self.client.address(),
                        self.startup_timeout
                    );
                }
                Err(err) => {
                    tracing::debug!(error = %err, "clamd not ready yet");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        // Read the version now, so the first verdicts carry it.
        *self.version.lock().expect("version lock") = None;
        if let Some(version) = self.version().await {
            tracing::info!(address = %self.client.address(), engine = %version.engine, signatures = ?version.signatures, "clamd ready");
        }
        Ok(())
    }

    async fn teardown(&self) -> anyhow::Result<()> {
        // CUSTOMIZE_HERE(4): release what setup acquired. Connections are
        // per scan, so only the cached version goes.
        *self.version.lock().expect("version lock") = None;
        Ok(())
    }

    async fn scan(&self, artifact: &Artifact) -> anyhow::Result<Analysis> {
        let Artifact::File(content) = artifact else {
            bail!("clamd scans file contents only");
        };
        // Errors (clamd down, timeout, size limit, ...) go up as they are:
        // the runtime answers them `unknown` with the reason, never `benign`.
        let reply = self.client.instream(content).await?;

        // CUSTOMIZE_HERE(5): the verdict and its confidence. clamd's
        // signatures are precise, so FOUND is malicious with full confidence;
        // a clean stream only means no signature matched, hence a lower
        // confidence for benign (which lowers the bid).
        let mut analysis = match reply {
            ScanReply::Found(signature) if signature.starts_with(LIMIT_SIGNATURE_PREFIX) => {
                Analysis::unknown(format!(
                    "SKIPPED: clamd hit a scan limit ({signature}); the artifact was not fully scanned"
                ))
            }
            ScanReply::Found(signature) => Analysis::malicious(signature, 1.0),
            ScanReply::Clean => Analysis::benign(0.5),
        };

        // CUSTOMIZE_HERE(6): the metadata you report: clamd's engine version
        // and signature database version (read once, refreshed periodically).
        if let Some(version) = self.version().await {
            analysis.metadata.scanner.vendor_version = Some(version.engine);
            analysis.metadata.scanner.signatures_version = version.signatures;
        }
        Ok(analysis)
    }
}
