//! The command line: `analyze`, `serve` and `send-bounty`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};

use super::analysis::{Analysis, Verdict};
use super::artifact::{Artifact, ArtifactKind, EICAR, EICAR_URL};
use super::bounty::Phase;
use super::config::Config;
use super::engine::Engine;
use super::forge::{send_bounty, ForgeRequest};
use super::logging::{self, LogFormat};
use super::scanner::Scanner;
use super::server::{serve, shutdown_signal, ServeOptions};

/// Exit code when a `--check-*` self-test fails.
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code for bad input: unreadable artifact, bad config, failed setup.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(version, about = concat!(env!("CARGO_PKG_DESCRIPTION"), "."), long_about = None)]
struct Cli {
    /// Config file (TOML). Default: ./engine.toml when it exists.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "ENGINE_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace (overrides LOG_LEVEL).
    #[arg(long = "log", global = true, value_name = "LEVEL")]
    log_level: Option<String>,

    /// Log format: text or json (overrides LOG_FORMAT).
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan artifacts in-process and print each result.
    ///
    /// Exits 0 when everything was scanned and every check passed, 1 when a
    /// check failed, 2 when an artifact could not be read.
    Analyze(AnalyzeArgs),
    /// Serve PolySwarm bounty webhooks.
    Serve(ServeArgs),
    /// Forge a signed bounty, send it to a running engine, print the verdict.
    SendBounty(SendBountyArgs),
    /// Exit 0 when a running engine is ready (for container health checks).
    Health(HealthArgs),
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// Readiness URL (default: /readyz on the configured listen port).
    #[arg(long)]
    url: Option<String>,
}

#[derive(Debug, clap::Args)]
struct AnalyzeArgs {
    /// Also scan the EICAR test file (or URL); it must come out malicious.
    #[arg(long)]
    check_eicar: bool,
    /// Also scan an empty artifact; it must come out benign or unknown.
    #[arg(long)]
    check_empty: bool,
    /// Print one JSON object per artifact instead of text.
    #[arg(long)]
    json: bool,
    /// How to read ARTIFACT: auto treats http(s):// arguments as URLs when
    /// the engine analyses URLs, and everything else as file paths.
    #[arg(long = "type", short = 't', value_enum, default_value_t = TypeArg::Auto)]
    kind: TypeArg,
    /// Files (or URLs) to scan.
    #[arg(value_name = "ARTIFACT")]
    artifacts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TypeArg {
    Auto,
    File,
    Url,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (overrides server.listen and ENGINE_LISTEN).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Handle N bounties, then exit.
    #[arg(long, value_name = "N")]
    testing: Option<u64>,
    /// Accept unsigned webhooks when no secret is set. Development only.
    #[arg(long)]
    allow_unsigned: bool,
    /// Allow file:// artifact URIs (local testing only).
    #[arg(long)]
    allow_file_uris: bool,
}

#[derive(Debug, clap::Args)]
struct SendBountyArgs {
    /// The engine's webhook URL.
    #[arg(long, default_value = "http://127.0.0.1:8000/")]
    engine: String,
    /// Webhook secret to sign with (default: the configured one).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Artifact type.
    #[arg(long = "type", short = 't', value_enum, default_value_t = KindArg::File)]
    kind: KindArg,
    /// Send an arbitration bounty (no bid) instead of an assertion.
    #[arg(long)]
    arbitration: bool,
    /// Bounty lifetime in seconds.
    #[arg(long, default_value_t = 30)]
    expires_in: u64,
    /// A local file, an http(s):// URL or a data: URI (with --type url: the URL).
    artifact: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    File,
    Url,
}

/// Entry point of the engine binary.
pub fn main<S: Scanner>() -> ExitCode {
    super::memory::tune_allocator();
    let cli = Cli::parse();
    match run::<S>(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn run<S: Scanner>(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::<S::Config>::from_file(cli.config.as_deref())?;
    config.apply_env()?;
    S::apply_env(&mut config.scanner)?;
    if let Some(level) = cli.log_level {
        config.log.level = level;
    }
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    logging::init(&config.log.level, config.log.format).map_err(anyhow::Error::msg)?;
    tracing::debug!(?config.scanner, "configuration loaded");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Analyze(args) => analyze::<S>(config, args).await,
            Command::Serve(args) => serve_command::<S>(config, args).await,
            Command::SendBounty(args) => send_bounty_command(config, args).await,
            Command::Health(args) => health_command(config, args).await,
        }
    })
}

async fn analyze<S: Scanner>(
    config: Config<S::Config>,
    args: AnalyzeArgs,
) -> anyhow::Result<ExitCode> {
    if args.artifacts.is_empty() && !args.check_eicar && !args.check_empty {
        anyhow::bail!("nothing to analyze: give ARTIFACT paths, --check-eicar or --check-empty");
    }
    let engine = Engine::<S>::from_config(config)?;
    engine
        .scanner()
        .setup()
        .await
        .context("scanner setup failed")?;

    let files = S::SUPPORTED.contains(&ArtifactKind::File);
    let mut exit = 0u8;

    for argument in &args.artifacts {
        let artifact = match read_artifact::<S>(argument, args.kind).await {
            Ok(artifact) => artifact,
            Err(err) => {
                report_error(argument, &format!("{err:#}"), args.json);
                exit = EXIT_BAD_INPUT;
                continue;
            }
        };
        let analysis = engine.analyze(&artifact).await;
        report(argument, &analysis, args.json, None);
    }
    if args.check_eicar {
        let (label, artifact) = if files {
            ("EICAR test file", Artifact::File(Bytes::from_static(EICAR)))
        } else {
            ("EICAR test URL", Artifact::Url(EICAR_URL.to_owned()))
        };
        let analysis = engine.analyze(&artifact).await;
        let passed = analysis.verdict == Verdict::Malicious;
        report(label, &analysis, args.json, Some(passed));
        if !passed && exit == 0 {
            exit = EXIT_CHECK_FAILED;
        }
    }
    if args.check_empty {
        let analysis = engine.analyze(&Artifact::File(Bytes::new())).await;
        let passed = matches!(analysis.verdict, Verdict::Benign | Verdict::Unknown);
        report("empty file", &analysis, args.json, Some(passed));
        if !passed && exit == 0 {
            exit = EXIT_CHECK_FAILED;
        }
    }
    if let Err(err) = engine.teardown().await {
        tracing::warn!(error = format!("{err:#}"), "scanner teardown failed");
    }
    Ok(ExitCode::from(exit))
}

async fn read_artifact<S: Scanner>(argument: &str, kind: TypeArg) -> anyhow::Result<Artifact> {
    let urls = S::SUPPORTED.contains(&ArtifactKind::Url);
    let looks_like_url = {
        let lower = argument.to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://")
    };
    let as_url = match kind {
        TypeArg::Url => true,
        TypeArg::File => false,
        TypeArg::Auto => urls && looks_like_url,
    };
    if as_url {
        return Ok(Artifact::Url(argument.to_owned()));
    }
    let content = tokio::fs::read(argument)
        .await
        .with_context(|| format!("cannot read {argument}"))?;
    Ok(Artifact::File(Bytes::from(content)))
}

fn report(label: &str, analysis: &Analysis, json: bool, check: Option<bool>) {
    if json {
        let mut line = serde_json::json!({
            "artifact": label,
            "verdict": analysis.verdict,
            "confidence": analysis.confidence,
            "metadata": analysis.metadata,
        });
        if let Some(passed) = check {
            line["check_passed"] = passed.into();
        }
        println!("{line}");
        return;
    }
    let mut text = format!(
        "{label}: {} (confidence {:.2}",
        analysis.verdict, analysis.confidence
    );
    if !analysis.metadata.malware_family.is_empty() {
        text.push_str(&format!(", family {}", analysis.metadata.malware_family));
    }
    text.push(')');
    for comment in &analysis.metadata.comments {
        text.push_str(&format!("\n    {comment}"));
    }
    match check {
        Some(true) => text.push_str("\n    check passed"),
        Some(false) => text.push_str("\n    CHECK FAILED"),
        None => {}
    }
    println!("{text}");
}

fn report_error(label: &str, error: &str, json: bool) {
    if json {
        println!("{}", serde_json::json!({"artifact": label, "error": error}));
    } else {
        println!("{label}: ERROR {error}");
    }
}

async fn serve_command<S: Scanner>(
    mut config: Config<S::Config>,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if args.allow_file_uris {
        config.bounties.allow_file_uris = true;
    }
    let secret = config
        .server
        .webhook_secret
        .clone()
        .filter(|secret| !secret.is_empty());
    if secret.is_none() && !args.allow_unsigned {
        anyhow::bail!(
            "no webhook secret: set WEBHOOK_SECRET (or server.webhook_secret), \
             or pass --allow-unsigned for local development"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let options = ServeOptions {
        secret,
        max_body_bytes: config.server.max_body_bytes,
        stop_after: args.testing,
        setup_retry: Duration::from_secs(5),
    };
    let engine = Arc::new(Engine::<S>::from_config(config)?);
    serve(listener, engine, options, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn send_bounty_command<S>(
    config: Config<S>,
    args: SendBountyArgs,
) -> anyhow::Result<ExitCode> {
    let request = ForgeRequest {
        engine_url: args.engine,
        secret: args.secret.or(config.server.webhook_secret),
        artifact: args.artifact,
        kind: match args.kind {
            KindArg::File => ArtifactKind::File,
            KindArg::Url => ArtifactKind::Url,
        },
        phase: if args.arbitration {
            Phase::Arbitration
        } else {
            Phase::Assertion
        },
        expires_in: Duration::from_secs(args.expires_in),
    };
    let verdict = send_bounty(request).await?;
    println!("{}", serde_json::to_string_pretty(&verdict)?);
    Ok(ExitCode::SUCCESS)
}

async fn health_command<S>(config: Config<S>, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .url
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/readyz", config.server.listen.port()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("ready");
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            println!("not ready: HTTP {}", response.status());
            Ok(ExitCode::from(EXIT_CHECK_FAILED))
        }
        Err(err) => {
            println!("not reachable: {err}");
            Ok(ExitCode::from(EXIT_CHECK_FAILED))
        }
    }
}
