//! The scanner: what this engine thinks of an artifact. YOUR FILE.
//!
//! This is the EICAR example: the scan logic lives right here, in Rust. It
//! calls the EICAR test file malicious and everything else benign{% if scans_urls %}, and
//! URLs on a small block list malicious{% endif %}. Replace it with your own analysis; the
//! runtime (`src/runtime/`) takes care of PolySwarm, artifacts and verdicts.
//!
//! Walk through the `CUSTOMIZE_HERE(n)` markers in order; the README explains
//! each one.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

use crate::runtime::artifact::EICAR;
use crate::runtime::{Analysis, Artifact, ArtifactKind, Scanner};

/// The scanner this engine runs.
pub type EngineScanner = EicarScanner;

// CUSTOMIZE_HERE(1): who you are and what you analyse. VENDOR and PRODUCT go
// into every verdict's metadata; SUPPORTED lists the artifact kinds you
// analyse (others are answered `unknown` without calling `scan`).
const VENDOR: &str = "{{author_org}}";
const PRODUCT: &str = "{{engine_slug}}";
const SUPPORTED: &[ArtifactKind] = &[{% if scans_files %}ArtifactKind::File{% endif %}{% if scans_files and scans_urls %}, {% endif %}{% if scans_urls %}ArtifactKind::Url{% endif %}];

/// The `[scanner]` table of `engine.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    // CUSTOMIZE_HERE(2): your scanner's settings. Each field is a key of the
    // `[scanner]` table in engine.toml; give it a default below, and read
    // environment overrides in `apply_env`.
    /// Confidence reported with every verdict, from 0.0 to 1.0.
    pub confidence: f64,
{%- if scans_urls %}
    /// Hosts whose URLs are malicious.
    pub blocked_hosts: Vec<String>,
{%- endif %}
}

impl Default for ScannerConfig {
    fn default() -> Self {
{%- if scans_urls %}
        Self {
            confidence: 1.0,
            blocked_hosts: vec!["malware.wicar.org".to_owned()],
        }
{%- else %}
        Self { confidence: 1.0 }
{%- endif %}
    }
}

/// Finds the EICAR test file{% if scans_urls %} and blocked URLs{% endif %}.
#[derive(Debug)]
pub struct EicarScanner {
    config: ScannerConfig,
    ready: AtomicBool,
}

impl Scanner for EicarScanner {
    type Config = ScannerConfig;

    const SUPPORTED: &'static [ArtifactKind] = SUPPORTED;
    const VENDOR: &'static str = VENDOR;
    const PRODUCT: &'static str = PRODUCT;

    fn new(config: ScannerConfig) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&config.confidence) {
            anyhow::bail!(
                "scanner.confidence must be between 0.0 and 1.0, not {}",
                config.confidence
            );
        }
        Ok(Self {
            config,
            ready: AtomicBool::new(false),
        })
    }

    fn apply_env(config: &mut ScannerConfig) -> anyhow::Result<()> {
        crate::runtime::config::env_override("SCANNER_CONFIDENCE", &mut config.confidence)
    }

    async fn setup(&self) -> anyhow::Result<()> {
        // CUSTOMIZE_HERE(3): get your backend ready: load signatures, start
        // or wait for a daemon, open connections. Setup runs again after
        // teardown, and twice in a row must be harmless.
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn teardown(&self) -> anyhow::Result<()> {
        // CUSTOMIZE_HERE(4): release what setup acquired. Twice in a row must
        // be harmless.
        self.ready.store(false, Ordering::Release);
        Ok(())
    }

    async fn scan(&self, artifact: &Artifact) -> anyhow::Result<Analysis> {
        // CUSTOMIZE_HERE(5): your scan logic. Return a verdict with a
        // confidence; return an error (or `Analysis::unknown`) when you cannot
        // tell: the runtime answers `unknown`, never `benign`, for errors.
        // Scans run concurrently; don't block the async runtime (use
        // `tokio::task::spawn_blocking` for heavy CPU work).
        let confidence = self.config.confidence;
        let analysis = match artifact {
            Artifact::File(content) => {
                if contains(content, EICAR) {
                    Analysis::malicious("EICAR-Test-File", confidence)
                } else {
                    Analysis::benign(confidence)
                }
            }
            Artifact::Url(url) => {
{%- if scans_urls %}
                if self.is_blocked(url) {
                    Analysis::malicious("Blocked-URL", confidence)
                } else {
                    Analysis::benign(confidence)
                }
{%- else %}
                anyhow::bail!("this engine does not analyse URLs ({url})")
{%- endif %}
            }
        };

        // CUSTOMIZE_HERE(6): the metadata you report with the verdict: your
        // backend's version and signature version, comments, domains, IPs.
        let mut analysis = analysis;
        analysis.metadata.scanner.vendor_version = Some(env!("CARGO_PKG_VERSION").to_owned());
        analysis.metadata.scanner.signatures_version = Some("eicar-1".to_owned());
        Ok(analysis)
    }
}
{%- if scans_urls %}

impl EicarScanner {
    /// Whether `url`'s host is on the block list.
    fn is_blocked(&self, url: &str) -> bool {
        let host = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        self.config
            .blocked_hosts
            .iter()
            .any(|blocked| host == *blocked || host.ends_with(&format!(".{blocked}")))
    }
}
{%- endif %}

/// Whether `needle` occurs anywhere in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
