//! Benchmark: this engine end to end over real HTTP on loopback{% if backend == "clamav" %},
//! measured against raw clamd `INSTREAM` (the limit) in the same run{% endif %}.
//!
//! ```sh
//! cargo bench --bench engine
//! cargo bench --bench engine -- --concurrency 8 --seconds 10 --sizes 4k,1m --json bench.json
//! ```
//!
//! For each artifact size it starts the built engine (`serve`, release
//! profile) as a child process, serves the artifact from a local HTTP
//! server, keeps `--concurrency` signed bounties in flight, receives the
//! verdicts on a local receiver, and prints bounties/s, latency p50/p99
//! (webhook sent -> verdict received) and the engine's peak RSS. Two last
//! runs keep 64 bounties of 1 MiB in flight to show the engine's peak
//! memory: with `--concurrency` of them taken by workers at once (the others
//! wait in the engine's queue, not yet downloaded), and with 64 workers, so
//! that all 64 artifacts are downloaded and held at once.
{%- if backend == "clamav" %}
//!
//! clamd is found through `CLAMD_HOST` / `CLAMD_PORT` (default
//! `localhost:3310`); its `StreamMaxLength`, `MaxFileSize` and `MaxScanSize`
//! must fit the largest size, and `--concurrency` should match its
//! `MaxThreads`. The raw figure comes from a minimal client that streams the
//! same bytes with the same concurrency, one connection per scan.
{%- endif %}
//!
//! The engine runs in the crate's directory, so `engine.toml` applies (the
//! listen address, concurrency and queue are set by the benchmark). The
//! figures are for comparison on one machine, in one run: the machine's other
//! load moves them all.

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use clap::Parser;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
{%- if backend == "clamav" %}
use tokio::io::{AsyncReadExt, AsyncWriteExt};
{%- endif %}
use tokio::net::TcpListener;
use tokio::sync::oneshot;

{% if backend == "clamav" -%}
use microengine::clamd::Address;
{% endif -%}
use microengine::runtime::forge::bounty_webhook;

const SECRET: &str = "benchmark-secret";
/// What the bounties carry: what this engine analyses.
const ARTIFACT_TYPE: &str = "{% if scans_files %}file{% else %}url{% endif %}";
const MIB: usize = 1024 * 1024;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks the engine end to end over loopback HTTP.")]
struct Args {
    /// Bounties in flight at once (the engine's bounties.concurrency, and
    /// its connections to the backend).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds measured per size, after a one-second warm-up.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Artifact sizes: a number with an optional k or m suffix (KiB, MiB).
    #[arg(long, value_delimiter = ',', default_value = "4k,1m,16m")]
    sizes: Vec<String>,
    /// Bounties kept in flight by the memory run (0 skips it).
    #[arg(long, default_value_t = 64)]
    memory_in_flight: usize,
    /// Also write the results here, as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Accepted and ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

/// One measured run.
#[derive(Debug, Serialize)]
struct Run {
    what: String,
    size_bytes: usize,
    /// Bounties in flight.
    concurrency: usize,
    /// Bounties the engine scans at once (`bounties.concurrency`); none for raw clamd.
    scanning: Option<usize>,
    completed: u64,
    errors: u64,
    per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    peak_rss_mb: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = args
        .sizes
        .iter()
        .map(|size| parse_size(size))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let runs = runtime.block_on(benchmark(&args, &sizes))?;
    print_table(&runs);
    if let Some(path) = &args.json {
        let report = json!({
            "engine": env!("CARGO_PKG_NAME"),
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn benchmark(args: &Args, sizes: &[usize]) -> anyhow::Result<Vec<Run>> {
    let measure = Duration::from_secs_f64(args.seconds);
    let warm_up = Duration::from_secs(1);
    let mut runs = Vec::new();
{%- if scans_files %}
    for &size in sizes {
        let artifact = Bytes::from(pseudo_random(size));
{%- if backend == "clamav" %}
        let address = clamd_address();
        raw_clamd(&address, &artifact, args.concurrency, warm_up).await?;
        let raw = raw_clamd(&address, &artifact, args.concurrency, measure).await?;
        eprintln!("raw clamd, {}: {:.1}/s", human(size), raw.per_second);
        runs.push(raw);
{%- endif %}
        let engine = engine_run(
            &artifact,
            args.concurrency,
            args.concurrency,
            args.concurrency,
            warm_up,
            measure,
        )
        .await?;
        eprintln!("engine, {}: {:.1}/s", human(size), engine.per_second);
        runs.push(engine);
    }
    if args.memory_in_flight > 0 {
        let artifact = Bytes::from(pseudo_random(MIB));
        for scanning in [args.concurrency, args.memory_in_flight] {
            let mut memory = engine_run(
                &artifact,
                scanning,
                args.concurrency,
                args.memory_in_flight,
                warm_up,
                measure,
            )
            .await?;
            memory.what = "engine memory".to_owned();
            eprintln!(
                "engine, {} in flight of 1 MiB, {scanning} scanned at once: peak RSS {:.1} MB",
                args.memory_in_flight,
                memory.peak_rss_mb.unwrap_or(f64::NAN)
            );
            runs.push(memory);
        }
    }
{%- else %}
    // This engine analyses URLs: the artifact is a URL, so sizes and the
    // memory run do not apply.
    let _ = sizes;
    let artifact = Bytes::from_static(b"https://www.example.com/index.html");
    let engine = engine_run(
        &artifact,
        args.concurrency,
        args.concurrency,
        args.concurrency,
        warm_up,
        measure,
    )
    .await?;
    eprintln!("engine, URL: {:.1}/s", engine.per_second);
    runs.push(engine);
{%- endif %}
    Ok(runs)
}

{%- if scans_files %}

/// Bytes no signature matches, the same in every run.
fn pseudo_random(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
{%- endif %}

fn parse_size(text: &str) -> anyhow::Result<usize> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, unit) = match text.strip_suffix('m') {
        Some(digits) => (digits, MIB),
        None => match text.strip_suffix('k') {
            Some(digits) => (digits, 1024),
            None => (text.as_str(), 1),
        },
    };
    let count: usize = digits
        .parse()
        .with_context(|| format!("--sizes: {text:?} is not a size such as 4k or 16m"))?;
    Ok(count * unit)
}

fn human(size: usize) -> String {
    if size >= MIB && size % MIB == 0 {
        format!("{} MiB", size / MIB)
    } else if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Latency samples in, percentiles out.
fn percentile(sorted: &[Duration], fraction: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    Some(sorted[index].as_secs_f64() * 1000.0)
}

fn print_table(runs: &[Run]) {
    println!();
    println!(
        "{:<14} {:>9} {:>9} {:>5} {:>9} {:>8} {:>9} {:>9} {:>11} {:>6}",
        "run",
        "size",
        "in flight",
        "scan",
        "done",
        "per s",
        "p50 ms",
        "p99 ms",
        "peak RSS MB",
        "errors"
    );
    let cell = |value: Option<f64>| value.map_or("-".to_owned(), |value| format!("{value:.1}"));
    for run in runs {
        println!(
            "{:<14} {:>9} {:>9} {:>5} {:>9} {:>8.1} {:>9} {:>9} {:>11} {:>6}",
            run.what,
            human(run.size_bytes),
            run.concurrency,
            run.scanning
                .map_or("-".to_owned(), |scanning| scanning.to_string()),
            run.completed,
            run.per_second,
            cell(run.p50_ms),
            cell(run.p99_ms),
            cell(run.peak_rss_mb),
            run.errors
        );
    }
{%- if backend == "clamav" %}
    for engine in runs.iter().filter(|run| run.what == "engine") {
        let raw = runs
            .iter()
            .find(|run| run.what == "raw clamd" && run.size_bytes == engine.size_bytes);
        if let Some(raw) = raw.filter(|raw| raw.per_second > 0.0) {
            println!(
                "engine/raw at {}: {:.2}",
                human(engine.size_bytes),
                engine.per_second / raw.per_second
            );
        }
    }
{%- endif %}
}

// --- the engine under test ---------------------------------------------------

/// The built engine, serving on a free loopback port.
struct EngineProcess {
    child: Child,
    url: String,
}

impl EngineProcess {
    /// `concurrency` bounties scanned at once, through at most
    /// `backend_connections` connections to the backend, and room in the
    /// queue for all `in_flight` (none is refused with 503).
    async fn start(
        concurrency: usize,
        backend_connections: usize,
        in_flight: usize,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_{{project-name}}"));
        command
            .args(["serve", "--listen", &address])
            .env("WEBHOOK_SECRET", SECRET)
            .env("ENGINE_CONCURRENCY", concurrency.to_string())
            .env("ENGINE_QUEUE", in_flight.to_string())
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null());
{%- if backend == "clamav" %}
        // The raw client's parallelism, unless the caller chose one.
        if std::env::var_os("CLAMD_MAX_CONNECTIONS").is_none() {
            command.env("CLAMD_MAX_CONNECTIONS", backend_connections.to_string());
        }
{%- else %}
        // No backend, nothing to bound.
        let _ = backend_connections;
{%- endif %}
        let child = command.spawn().context("cannot start the engine")?;
        let engine = Self {
            child,
            url: format!("http://{address}/"),
        };
        let ready = format!("{}readyz", engine.url);
        for _ in 0..600 {
            if let Ok(response) = reqwest::get(&ready).await {
                if response.status().is_success() {
                    return Ok(engine);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the engine did not become ready within 30 s (is its backend up?)")
    }

    /// The most memory the process has held so far (Linux: `VmHWM`).
    fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Who waits for the verdict of which bounty.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// PolySwarm's side: serves the artifact, receives verdicts.
struct Marketplace {
    artifact_url: String,
    verdict_base: String,
    waiting: Waiting,
}

impl Marketplace {
    async fn start(artifact: Bytes) -> anyhow::Result<Self> {
        let waiting = Waiting::default();
        let artifacts = TcpListener::bind("127.0.0.1:0").await?;
        let artifact_url = format!("http://{}/artifact", artifacts.local_addr()?);
        let app = Router::new().route("/artifact", get(move || async move { artifact.clone() }));
        tokio::spawn(async move { axum::serve(artifacts, app).await });

        let receiver = TcpListener::bind("127.0.0.1:0").await?;
        let verdict_base = format!("http://{}/verdict/", receiver.local_addr()?);
        let app = Router::new()
            .route("/verdict/{id}", post(receive))
            .with_state(Arc::clone(&waiting));
        tokio::spawn(async move { axum::serve(receiver, app).await });
        Ok(Self {
            artifact_url,
            verdict_base,
            waiting,
        })
    }
}

async fn receive(State(waiting): State<Waiting>, Path(id): Path<u64>, body: Bytes) -> StatusCode {
    let verdict = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match waiting.lock().unwrap().remove(&id) {
        Some(sender) => {
            let _ = sender.send(verdict);
            StatusCode::OK
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// Starts an engine that scans `scanning` bounties at once through at most
/// `backend_connections`, warms it up, then keeps `in_flight` bounties
/// going for `measure`.
async fn engine_run(
    artifact: &Bytes,
    scanning: usize,
    backend_connections: usize,
    in_flight: usize,
    warm_up: Duration,
    measure: Duration,
) -> anyhow::Result<Run> {
    let engine = EngineProcess::start(scanning, backend_connections, in_flight).await?;
    let market = Arc::new(Marketplace::start(artifact.clone()).await?);
    let sha256 = hex::encode(Sha256::digest(artifact));
    let client = reqwest::Client::new();
    let load = Load {
        client,
        engine_url: engine.url.clone(),
        market,
        sha256,
        next_id: Arc::default(),
    };
    let attempt = move || {
        let load = load.clone();
        async move { load.one_bounty().await.context("bounty failed") }
    };
    closed_loop(in_flight, warm_up, attempt.clone()).await;
    let (latencies, errors, elapsed) = closed_loop(in_flight, measure, attempt).await;
    if errors > 0 {
        bail!("{errors} bounties failed (see above): the figures would mislead");
    }
    let mut run = summarize(
        "engine",
        artifact.len(),
        in_flight,
        latencies,
        errors,
        elapsed,
        engine.peak_rss_mb(),
    );
    run.scanning = Some(scanning);
    Ok(run)
}

/// Closed-loop load: `in_flight` workers each run `attempt` again and again
/// until `duration` is over, so `in_flight` attempts are always going.
/// Returns the latency of every success, the number of failures (each
/// printed) and the time it all took.
async fn closed_loop<F, Fut>(
    in_flight: usize,
    duration: Duration,
    attempt: F,
) -> (Vec<Duration>, u64, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    let started = Instant::now();
    let until = started + duration;
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let attempt = attempt.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < until {
                    match attempt().await {
                        Ok(latency) => latencies.push(latency),
                        Err(err) => {
                            errors += 1;
                            eprintln!("{err:#}");
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (samples, failed) = worker.await.expect("worker ran");
        latencies.extend(samples);
        errors += failed;
    }
    (latencies, errors, started.elapsed())
}

/// One bounty at a time: send it, wait for its verdict.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    engine_url: String,
    market: Arc<Marketplace>,
    sha256: String,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Load {
    async fn one_bounty(&self) -> anyhow::Result<Duration> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, verdict) = oneshot::channel();
        self.market.waiting.lock().unwrap().insert(id, sender);
        let body = serde_json::to_vec(&json!({
            "id": id,
            "artifact_type": ARTIFACT_TYPE,
            "artifact_uri": self.market.artifact_url,
            "sha256": self.sha256,
            "response_url": format!("{}{id}", self.market.verdict_base),
            "expiration": (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc3339(),
            "phase": "assertion",
            "rules": {"min_allowed_bid": 62_500_000_000_000_000u64, "max_allowed_bid": 1_000_000_000_000_000_000u64},
        }))?;
        let sent = Instant::now();
        let response = bounty_webhook(&self.client, &self.engine_url, Some(SECRET), body)
            .send()
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            self.market.waiting.lock().unwrap().remove(&id);
            bail!("bounty {id}: HTTP {}", response.status());
        }
        let verdict = tokio::time::timeout(Duration::from_secs(120), verdict)
            .await
            .context("no verdict within 120 s")??;
        let latency = sent.elapsed();
        match verdict["verdict"].as_str() {
            Some("benign") => Ok(latency),
            _ => bail!("bounty {id}: expected benign, got {verdict}"),
        }
    }
}

fn summarize(
    what: &str,
    size: usize,
    concurrency: usize,
    mut latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
    peak_rss_mb: Option<f64>,
) -> Run {
    latencies.sort();
    Run {
        what: what.to_owned(),
        size_bytes: size,
        concurrency,
        scanning: None,
        completed: latencies.len() as u64,
        errors,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        peak_rss_mb,
    }
}
{%- if backend == "clamav" %}

// --- raw clamd: the limit ------------------------------------------------------

fn clamd_address() -> Address {
    let host = std::env::var("CLAMD_HOST").unwrap_or_else(|_| "localhost".to_owned());
    let port = std::env::var("CLAMD_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3310);
    Address::new(&host, port)
}

/// `in_flight` workers stream `artifact` to clamd, one connection per scan,
/// for `duration`.
async fn raw_clamd(
    address: &Address,
    artifact: &Bytes,
    in_flight: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let attempt = {
        let address = address.clone();
        let artifact = artifact.clone();
        move || {
            let address = address.clone();
            let artifact = artifact.clone();
            async move {
                let sent = Instant::now();
                match instream(&address, &artifact).await {
                    Ok(reply) if reply == "stream: OK" => Ok(sent.elapsed()),
                    Ok(reply) => bail!("raw clamd: {reply}"),
                    Err(err) => bail!("raw clamd: {err}"),
                }
            }
        }
    };
    let (latencies, errors, elapsed) = closed_loop(in_flight, duration, attempt).await;
    if latencies.is_empty() {
        bail!("raw clamd at {address}: no scan succeeded");
    }
    Ok(summarize(
        "raw clamd",
        artifact.len(),
        in_flight,
        latencies,
        errors,
        elapsed,
        None,
    ))
}

/// The least a client can do: `zINSTREAM`, 64 KiB chunks, read the reply.
async fn instream(address: &Address, data: &[u8]) -> std::io::Result<String> {
    match address {
        Address::Tcp { host, port } => {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            instream_over(&mut stream, data).await
        }
        #[cfg(unix)]
        Address::Unix(path) => {
            let mut stream = tokio::net::UnixStream::connect(path).await?;
            instream_over(&mut stream, data).await
        }
        #[cfg(not(unix))]
        Address::Unix(_) => Err(std::io::ErrorKind::Unsupported.into()),
    }
}

async fn instream_over(
    stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
    data: &[u8],
) -> std::io::Result<String> {
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in data.chunks(64 * 1024) {
        stream
            .write_all(&(chunk.len() as u32).to_be_bytes())
            .await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&[0; 4]).await?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        let read = stream.read(&mut buffer).await?;
        reply.extend_from_slice(&buffer[..read]);
        if read == 0 || reply.contains(&0) {
            break;
        }
    }
    let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
    Ok(String::from_utf8_lossy(&reply[..end]).into_owned())
}
{%- endif %}
