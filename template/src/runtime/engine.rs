//! The engine: runs the scanner on artifacts and takes a bounty from webhook
//! to delivered verdict.
//!
//! Every path out of [`Engine::process`] delivers exactly one verdict. Any
//! failure (fetch, scan, backend, timeout) becomes `unknown` with bid 0 and a
//! comment saying why; it never becomes `benign`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::analysis::{Analysis, Metadata, Verdict};
use super::artifact::Artifact;
use super::bounty::{Bounty, Phase};
use super::config::{BountyConfig, Config};
use super::deliver::{Delivery, Outcome};
use super::fetch::{redact, Fetcher};
use super::scanner::Scanner;

/// A scanner plus everything needed to answer bounties with it.
pub struct Engine<S: Scanner> {
    scanner: S,
    fetcher: Fetcher,
    delivery: Delivery,
    settings: BountyConfig,
    ready: AtomicBool,
    workers: Semaphore,
    pending: AtomicUsize,
    idle: Notify,
    answered: AtomicU64,
    answered_changed: Notify,
}

impl<S: Scanner> Engine<S> {
    /// Builds the engine and its scanner from the configuration.
    pub fn from_config(config: Config<S::Config>) -> anyhow::Result<Self> {
        let fetcher = Fetcher::new(&config.fetch, config.bounties.allow_file_uris)?;
        let delivery = Delivery::new(config.bounties.delivery_timeout())?;
        let scanner = S::new(config.scanner)?;
        Ok(Self {
            scanner,
            fetcher,
            delivery,
            workers: Semaphore::new(config.bounties.concurrency),
            settings: config.bounties,
            ready: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
            answered: AtomicU64::new(0),
            answered_changed: Notify::new(),
        })
    }

    /// The scanner.
    pub fn scanner(&self) -> &S {
        &self.scanner
    }

    /// Whether the scanner's setup has succeeded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs the scanner's setup, retrying every `retry` until it succeeds.
    pub async fn setup_until_ready(&self, retry: Duration) {
        loop {
            match self.scanner.setup().await {
                Ok(()) => {
                    self.ready.store(true, Ordering::Release);
                    tracing::info!("scanner ready");
                    return;
                }
                Err(err) => {
                    tracing::error!(error = format!("{err:#}"), "scanner setup failed; retrying");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }

    /// Runs the scanner's teardown.
    pub async fn teardown(&self) -> anyhow::Result<()> {
        self.ready.store(false, Ordering::Release);
        self.scanner.teardown().await
    }

    /// Scans one artifact; errors and unsupported kinds become `unknown`.
    /// The metadata comes back stamped with the engine's identity.
    pub async fn analyze(&self, artifact: &Artifact) -> Analysis {
        let mut analysis = if !S::SUPPORTED.contains(&artifact.kind()) {
            Analysis::unknown(format!(
                "SKIPPED:TYPE-UNSUPPORTED: this engine does not analyse {} artifacts",
                artifact.kind()
            ))
        } else {
            match self.scanner.scan(artifact).await {
                Ok(analysis) => analysis,
                Err(err) => Analysis::unknown(format!("SCAN-FAILED: {err:#}")),
            }
        };
        analysis.metadata.stamp(S::PRODUCT, S::VENDOR);
        analysis
    }

    /// Bounties accepted and not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Bounties answered since start.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Acquire)
    }

    /// Counts a bounty in, unless `capacity` are already pending. The caller
    /// must then [`Engine::process`] it, which counts it out.
    pub fn try_admit(&self) -> bool {
        let capacity = self.settings.concurrency + self.settings.queue_capacity;
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending < capacity).then_some(pending + 1)
            })
            .is_ok()
    }

    /// Waits until no admitted bounty is left unanswered.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.pending() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Waits until at least `count` bounties have been answered.
    pub async fn wait_answered(&self, count: u64) {
        loop {
            let changed = self.answered_changed.notified();
            if self.answered() >= count {
                return;
            }
            changed.await;
        }
    }

    /// Takes an admitted bounty to its delivered verdict.
    pub async fn process(&self, bounty: Bounty) {
        let outcome = self.answer(&bounty).await;
        match outcome {
            Outcome::Delivered { attempts } => {
                tracing::info!(bounty = %bounty.id, attempts, "verdict delivered");
            }
            Outcome::Failed {
                attempts,
                last_error,
            } => {
                tracing::error!(bounty = %bounty.id, attempts, error = %last_error, "verdict NOT delivered");
            }
        }
        self.answered.fetch_add(1, Ordering::AcqRel);
        self.answered_changed.notify_waiters();
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    async fn answer(&self, bounty: &Bounty) -> Outcome {
        let now = Instant::now();
        let expires_at = match bounty.expiration {
            Some(expiration) => {
                let left = (expiration - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                now + left
            }
            None => now + Duration::from_secs(self.settings.default_expiration_secs),
        };
        let scan_deadline = expires_at
            .checked_sub(self.settings.deadline_margin())
            .unwrap_or(now);

        let analysis = if scan_deadline <= now {
            tracing::warn!(bounty = %bounty.id, "bounty expired before it could be scanned");
            let mut analysis =
                Analysis::unknown("SKIPPED:EXPIRED: the bounty expired before it could be scanned");
            analysis.metadata.stamp(S::PRODUCT, S::VENDOR);
            analysis
        } else {
            match tokio::time::timeout_at(scan_deadline, self.fetch_and_scan(bounty)).await {
                Ok(analysis) => analysis,
                Err(_) => {
                    tracing::warn!(bounty = %bounty.id, "scan abandoned at the bounty's deadline");
                    let mut analysis = Analysis::unknown(
                        "TIMEOUT: the scan would have outlived the bounty's deadline",
                    );
                    analysis.metadata.stamp(S::PRODUCT, S::VENDOR);
                    analysis
                }
            }
        };

        let body = response_body(bounty, &analysis);
        tracing::info!(
            bounty = %bounty.id,
            verdict = %analysis.verdict,
            to = redact(&bounty.response_url),
            "delivering verdict"
        );
        self.delivery
            .deliver(&bounty.response_url, body, expires_at)
            .await
    }

    async fn fetch_and_scan(&self, bounty: &Bounty) -> Analysis {
        let unknown = |comment: String| {
            let mut analysis = Analysis::unknown(comment);
            analysis.metadata.stamp(S::PRODUCT, S::VENDOR);
            analysis
        };
        let Some(kind) = bounty.kind.filter(|kind| S::SUPPORTED.contains(kind)) else {
            return unknown(format!(
                "SKIPPED:TYPE-UNSUPPORTED: this engine does not analyse {} artifacts",
                bounty.artifact_type
            ));
        };
        // Wait for a worker; the deadline around us bounds the wait.
        let Ok(_worker) = self.workers.acquire().await else {
            return unknown("SKIPPED: the engine is shutting down".to_owned());
        };
        let content = match self.fetcher.fetch(&bounty.artifact_uri).await {
            Ok(content) => content,
            Err(err) => {
                tracing::warn!(bounty = %bounty.id, error = %err, "artifact fetch failed");
                return unknown(format!("SKIPPED:CANNOT-FETCH: {err}"));
            }
        };
        if let Some(expected) = &bounty.sha256 {
            let actual = hex::encode(Sha256::digest(&content));
            if &actual != expected {
                tracing::warn!(bounty = %bounty.id, %expected, %actual, "artifact sha256 mismatch");
                return unknown(format!(
                    "SKIPPED:HASH-MISMATCH: artifact sha256 is {actual}, the bounty says {expected}"
                ));
            }
        }
        let artifact = match Artifact::from_content(kind, content) {
            Ok(artifact) => artifact,
            Err(err) => return unknown(format!("SKIPPED: {err}")),
        };
        self.analyze(&artifact).await
    }
}

/// The JSON posted to `response_url` in the assertion phase.
#[derive(Serialize)]
struct Assertion<'a> {
    verdict: Verdict,
    /// In wei; serialized as a JSON integer however large.
    bid: u128,
    metadata: &'a Metadata,
}

/// The JSON posted to `response_url` in the arbitration phase: a vote, no bid.
#[derive(Serialize)]
struct Vote<'a> {
    verdict: Verdict,
    metadata: &'a Metadata,
}

/// The verdict body for `bounty`. Only `malicious` and `benign` carry a bid,
/// kept within the bounty's rules whatever the bid strategy says.
pub fn response_body(bounty: &Bounty, analysis: &Analysis) -> Vec<u8> {
    let verdict = analysis.verdict;
    let metadata = &analysis.metadata;
    let body = match bounty.phase {
        Phase::Assertion => {
            let bid = if verdict.is_assertion() {
                bounty.rules.clamp(crate::bid::bid(analysis, &bounty.rules))
            } else {
                0
            };
            serde_json::to_vec(&Assertion {
                verdict,
                bid,
                metadata,
            })
        }
        Phase::Arbitration => serde_json::to_vec(&Vote { verdict, metadata }),
    };
    body.expect("verdicts always serialize")
}
