//! The engine's runtime: everything between PolySwarm and your scanner.
//!
//! You normally don't edit these files; `src/scanner.rs` and `src/bid.rs`
//! are yours. Each module has one job:
//!
//! | module | job |
//! |---|---|
//! | [`scanner`] | the [`Scanner`] trait your scanner implements |
//! | [`analysis`] | verdicts, confidence, verdict metadata |
//! | [`artifact`] | artifact kinds and contents, the EICAR test file |
//! | [`bounty`] | parsing bounty webhooks; bid rules |
//! | [`signature`] | HMAC-SHA256 webhook signatures |
//! | [`fetch`] | downloading artifacts (`http(s)`, `data:`, `file:`) |
//! | [`engine`] | scanning and answering one bounty, within its deadline |
//! | [`deliver`] | posting verdicts, with retries |
//! | [`server`] | the webhook HTTP server, health checks, graceful shutdown |
//! | [`forge`] | `send-bounty`: forging a bounty for local testing |
//! | [`config`] | the TOML file and environment variables |
//! | [`logging`] | `LOG_LEVEL` / `LOG_FORMAT` |
//! | [`memory`] | allocator tuning for artifact-sized buffers |
//! | [`cli`] | the command line |

pub mod analysis;
pub mod artifact;
pub mod bounty;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod engine;
pub mod fetch;
pub mod forge;
pub mod logging;
pub mod memory;
pub mod scanner;
pub mod server;
pub mod signature;

pub use analysis::{Analysis, Metadata, Verdict};
pub use artifact::{Artifact, ArtifactKind};
pub use bounty::{BidRules, Bounty, Phase};
pub use config::Config;
pub use engine::Engine;
pub use scanner::Scanner;
