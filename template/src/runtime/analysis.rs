//! What a scan produces: a verdict, how sure the scanner is of it, and the
//! metadata that PolySwarm's verdict schema asks for.
//!
//! The scanner fills in what only it knows (the malware family, its backend's
//! versions, comments); the runtime stamps the rest (`product`, `vendor`,
//! `scanner.version`, `scanner.environment`) so no verdict leaves without them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// PolySwarm's four verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The artifact is malware. Carries a bid in the assertion phase.
    Malicious,
    /// The artifact is clean. Carries a bid in the assertion phase.
    Benign,
    /// Something is off, but not enough to call it malware. Bid 0.
    Suspicious,
    /// No verdict: the artifact was not (or could not be) analysed. Bid 0.
    Unknown,
}

impl Verdict {
    /// The wire name: `malicious`, `benign`, `suspicious` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Malicious => "malicious",
            Verdict::Benign => "benign",
            Verdict::Suspicious => "suspicious",
            Verdict::Unknown => "unknown",
        }
    }

    /// Whether this verdict is an assertion that carries a bid.
    pub fn is_assertion(self) -> bool {
        matches!(self, Verdict::Malicious | Verdict::Benign)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of analysing one artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// What the scanner concluded.
    pub verdict: Verdict,
    /// How sure it is, from 0.0 to 1.0. Drives the default bid.
    pub confidence: f64,
    /// The verdict metadata sent to PolySwarm.
    pub metadata: Metadata,
}

impl Analysis {
    /// A `malicious` verdict naming the malware family.
    pub fn malicious(malware_family: impl Into<String>, confidence: f64) -> Self {
        let mut analysis = Self::with_verdict(Verdict::Malicious, confidence);
        analysis.metadata.malware_family = malware_family.into();
        analysis
    }

    /// A `benign` verdict.
    pub fn benign(confidence: f64) -> Self {
        Self::with_verdict(Verdict::Benign, confidence)
    }

    /// A `suspicious` verdict with a comment saying why.
    pub fn suspicious(comment: impl Into<String>) -> Self {
        Self::with_verdict(Verdict::Suspicious, 0.0).with_comment(comment)
    }

    /// An `unknown` verdict with a comment saying why no verdict was reached.
    pub fn unknown(comment: impl Into<String>) -> Self {
        Self::with_verdict(Verdict::Unknown, 0.0).with_comment(comment)
    }

    /// Any verdict with empty metadata.
    pub fn with_verdict(verdict: Verdict, confidence: f64) -> Self {
        Self {
            verdict,
            confidence: clamp_confidence(confidence),
            metadata: Metadata::default(),
        }
    }

    /// Adds a comment to the metadata.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.metadata.comments.push(comment.into());
        self
    }
}

/// Confidence outside 0.0..=1.0 (or NaN) is a scanner bug; keep it harmless.
fn clamp_confidence(confidence: f64) -> f64 {
    if confidence.is_nan() {
        0.0
    } else {
        confidence.clamp(0.0, 1.0)
    }
}

/// Verdict metadata, following polyswarm-artifact's `Verdict` schema.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The malware family (required by the schema; empty when not malicious).
    pub malware_family: String,
    /// The engine's product name, stamped by the runtime.
    #[serde(default)]
    pub product: String,
    /// The organisation behind the engine, stamped by the runtime.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    /// Versions of the engine and its backend.
    #[serde(default)]
    pub scanner: ScannerInfo,
    /// Free-form notes: why a verdict is `unknown`, what was skipped, ...
    #[serde(default)]
    pub comments: Vec<String>,
    /// Whether the verdict comes from a heuristic rather than a signature.
    #[serde(default)]
    pub heuristic: bool,
    /// Domains seen in the artifact (optional in the schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// IP addresses seen in the artifact (optional in the schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
}

/// The `scanner` object of the verdict metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScannerInfo {
    /// The engine's own version (`^[0-9]+([.][0-9]+)*$`), stamped by the runtime.
    #[serde(default)]
    pub version: String,
    /// The backend's version, e.g. clamd's `1.4.6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_version: Option<String>,
    /// The signature database's version, e.g. ClamAV's daily DB number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures_version: Option<String>,
    /// Where the engine runs, stamped by the runtime.
    #[serde(default)]
    pub environment: Environment,
}

/// The `scanner.environment` object of the verdict metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// e.g. `Linux`.
    pub operating_system: String,
    /// e.g. `x86_64`.
    pub architecture: String,
}

impl Environment {
    /// The machine this engine runs on.
    pub fn current() -> Self {
        let operating_system = match std::env::consts::OS {
            "linux" => "Linux",
            "windows" => "Windows",
            "macos" => "Darwin",
            other => other,
        };
        Self {
            operating_system: operating_system.to_owned(),
            architecture: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// The engine's own version, as the schema wants it: digits and dots only.
pub fn engine_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    // Drop any pre-release or build suffix (`0.1.0-rc.1` -> `0.1.0`).
    version
        .split(['-', '+'])
        .next()
        .unwrap_or(version)
        .to_owned()
}

impl Metadata {
    /// Fills in the fields the runtime owns.
    pub fn stamp(&mut self, product: &str, vendor: &str) {
        product.clone_into(&mut self.product);
        vendor.clone_into(&mut self.vendor);
        self.scanner.version = engine_version();
        self.scanner.environment = Environment::current();
    }
}
