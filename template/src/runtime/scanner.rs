//! The contract between the runtime and the engine's scanner.
//!
//! The author implements [`Scanner`] in `src/scanner.rs`; the runtime calls it
//! from `analyze`, from `serve` and from the tests. Errors returned by any of
//! these methods never become a `benign` verdict: the runtime answers
//! `unknown` with the error in the metadata.

use std::fmt::Debug;
use std::future::Future;

use serde::de::DeserializeOwned;

use super::analysis::Analysis;
use super::artifact::{Artifact, ArtifactKind};

/// A malware scanner the runtime can drive.
pub trait Scanner: Sized + Send + Sync + 'static {
    /// Settings read from the `[scanner]` table of the config file.
    type Config: DeserializeOwned + Default + Debug + Send + Sync;

    /// The artifact kinds this scanner analyses; others are answered `unknown`.
    const SUPPORTED: &'static [ArtifactKind];

    /// Who makes this engine: stamped into every verdict's metadata.
    const VENDOR: &'static str;

    /// The product name stamped into every verdict's metadata.
    const PRODUCT: &'static str;

    /// Builds the scanner from its settings. Must not block or connect:
    /// [`Scanner::setup`] does that.
    fn new(config: Self::Config) -> anyhow::Result<Self>;

    /// Applies environment variables over the file's settings (e.g.
    /// `CLAMD_HOST`). [`crate::runtime::config::env_override`] parses one
    /// variable with an error that names it.
    fn apply_env(config: &mut Self::Config) -> anyhow::Result<()> {
        let _ = config;
        Ok(())
    }

    /// Gets the backend ready. Called before the first scan, and again after
    /// [`Scanner::teardown`]; calling it twice in a row must be harmless.
    fn setup(&self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Releases what setup acquired. Calling it twice must be harmless.
    fn teardown(&self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Analyses one artifact. Called concurrently from many tasks.
    fn scan(&self, artifact: &Artifact) -> impl Future<Output = anyhow::Result<Analysis>> + Send;
}
