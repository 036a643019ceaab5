//! Helpers shared by the integration tests: real HTTP servers on loopback
//! standing in for PolySwarm's side (artifact storage, the verdict receiver),
//! an engine served in-process, and a scriptable test scanner for failure
//! modes a real backend can't be made to produce on demand.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]
{%- if backend == "clamav" %}

pub mod clamd;
pub use clamd::Backend;
{%- else %}

/// The engine's backend, started for a test. The EICAR scanner needs none.
pub struct Backend;

impl Backend {
    /// Starts the backend; `None` means it is not installed (and the test
    /// said so).
    pub fn start() -> Option<Self> {
        Some(Backend)
    }

    /// The scanner settings that reach this backend.
    pub fn scanner_config(&self) -> <microengine::scanner::EngineScanner as Scanner>::Config {
        Default::default()
    }

    /// Points a child engine process at this backend.
    pub fn configure(&self, _command: &mut std::process::Command) {}
}
{%- endif %}

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

{% if scans_files -%}
use microengine::runtime::artifact::EICAR;
{% else -%}
use microengine::runtime::artifact::{EICAR, EICAR_URL};
{% endif -%}
use microengine::runtime::server::{self, ServeOptions};
use microengine::runtime::signature;
use microengine::runtime::{Analysis, Artifact, ArtifactKind, Config, Engine, Scanner};

/// A test artifact: its kind and content (a URL artifact's content is the
/// URL).
pub type Sample = (ArtifactKind, &'static [u8]);

/// A sample the engine's real scanner must call malicious.
{%- if scans_files %}
pub const MALICIOUS_SAMPLE: Sample = (ArtifactKind::File, EICAR);
/// A sample the engine's real scanner must call benign.
pub const CLEAN_SAMPLE: Sample = (ArtifactKind::File, b"not a malicious file");
{%- else %}
pub const MALICIOUS_SAMPLE: Sample = (ArtifactKind::Url, EICAR_URL.as_bytes());
/// A sample the engine's real scanner must call benign.
pub const CLEAN_SAMPLE: Sample = (ArtifactKind::Url, b"https://www.example.com/index.html");
{%- endif %}

/// A sample as an artifact to scan.
pub fn sample((kind, content): Sample) -> Artifact {
    Artifact::from_content(kind, Bytes::from_static(content)).unwrap()
}

/// A sample as a command-line argument: the path of a file in `dir` that
/// holds it, or the URL itself.
pub fn sample_argument(dir: &std::path::Path, (kind, content): Sample, file_name: &str) -> String {
    match kind {
        ArtifactKind::File => {
            let path = dir.join(file_name);
            std::fs::write(&path, content).unwrap();
            path.display().to_string()
        }
        ArtifactKind::Url => String::from_utf8(content.to_vec()).unwrap(),
    }
}

/// The secret the test engines are started with.
pub const SECRET: &str = "test-webhook-secret";

async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// Serves artifacts over HTTP: `GET /<name>`; unknown names get 404.
pub struct ArtifactServer {
    pub address: SocketAddr,
    files: Arc<Mutex<HashMap<String, Bytes>>>,
}

#[derive(Clone)]
struct ArtifactState {
    files: Arc<Mutex<HashMap<String, Bytes>>>,
    delay: Duration,
}

impl ArtifactServer {
    /// Starts a server that answers after `delay`.
    pub async fn start(delay: Duration) -> Self {
        let (listener, address) = loopback().await;
        let files = Arc::new(Mutex::new(HashMap::new()));
        let state = ArtifactState {
            files: Arc::clone(&files),
            delay,
        };
        let app = Router::new()
            .route("/{*name}", get(serve_artifact))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, files }
    }

    /// Publishes `content` and returns its URL.
    pub fn publish(&self, name: &str, content: impl Into<Bytes>) -> String {
        self.files
            .lock()
            .unwrap()
            .insert(name.to_owned(), content.into());
        self.url(name)
    }

    /// Publishes `sample` under `name`; returns what a bounty needs to point
    /// at it: its kind and URL.
    pub fn publish_sample(&self, name: &str, (kind, content): Sample) -> (ArtifactKind, String) {
        (kind, self.publish(name, Bytes::from_static(content)))
    }

    /// The URL of `name`, published or not.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.address)
    }
}

async fn serve_artifact(
    State(state): State<ArtifactState>,
    Path(name): Path<String>,
) -> Result<Bytes, StatusCode> {
    tokio::time::sleep(state.delay).await;
    let content = state.files.lock().unwrap().get(&name).cloned();
    content.ok_or(StatusCode::NOT_FOUND)
}

/// Receives verdicts: `POST /<anything>`, recorded with their path.
pub struct Receiver {
    pub address: SocketAddr,
    state: Arc<ReceiverState>,
    /// Stops the running server (see [`Receiver::go_down`]).
    server: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

struct ReceiverState {
    verdicts: Mutex<Vec<(String, Value)>>,
    attempts: AtomicUsize,
    fail_first: AtomicUsize,
    changed: Notify,
    /// Who waits for the verdict at a path (see [`Receiver::expect`]).
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

impl Receiver {
    /// Starts a receiver that answers 500 to its first `fail_first` POSTs.
    pub async fn start(fail_first: usize) -> Self {
        let (listener, address) = loopback().await;
        let state = Arc::new(ReceiverState {
            verdicts: Mutex::new(Vec::new()),
            attempts: AtomicUsize::new(0),
            fail_first: AtomicUsize::new(fail_first),
            changed: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
        });
        let server = Self::serve(listener, &state);
        Self {
            address,
            state,
            server: Mutex::new(Some(server)),
        }
    }

    fn serve(
        listener: TcpListener,
        state: &Arc<ReceiverState>,
    ) -> (oneshot::Sender<()>, JoinHandle<()>) {
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(Arc::clone(state));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, task)
    }

    /// Takes the receiver off the network for `outage`: its port refuses
    /// connections, as a crashed or restarting service's does. Then it comes
    /// back on the same address.
    pub async fn go_down(&self, outage: Duration) {
        let server = self.server.lock().unwrap().take();
        if let Some((stop, task)) = server {
            let _ = stop.send(());
            let _ = task.await;
        }
        tokio::time::sleep(outage).await;
        let listener = TcpListener::bind(self.address).await.unwrap();
        *self.server.lock().unwrap() = Some(Self::serve(listener, &self.state));
    }

    /// The verdict for bounty `id`, delivered through a channel as it
    /// arrives. Call before sending the bounty.
    pub fn expect(&self, id: &str) -> oneshot::Receiver<Value> {
        let (sender, verdict) = oneshot::channel();
        self.state
            .waiters
            .lock()
            .unwrap()
            .insert(format!("verdict/{id}"), sender);
        verdict
    }

    /// The `response_url` for bounty `id`.
    pub fn url(&self, id: &str) -> String {
        format!("http://{}/verdict/{id}", self.address)
    }

    /// POSTs received, failed ones included.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// Verdicts received so far, as (path, body).
    pub fn verdicts(&self) -> Vec<(String, Value)> {
        self.state.verdicts.lock().unwrap().clone()
    }

    /// Waits until `count` verdicts arrived, or panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<(String, Value)> {
        let wait = async {
            loop {
                let changed = self.state.changed.notified();
                if self.state.verdicts.lock().unwrap().len() >= count {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            panic!(
                "expected {count} verdicts within {timeout:?}, got {:?}",
                self.verdicts()
            );
        }
        self.verdicts()
    }

    /// The one verdict for bounty `id`.
    pub async fn verdict_for(&self, id: &str) -> Value {
        let path = format!("verdict/{id}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.state.changed.notified();
            let found: Vec<Value> = self
                .verdicts()
                .into_iter()
                .filter(|(p, _)| *p == path)
                .map(|(_, body)| body)
                .collect();
            if let Some(first) = found.first() {
                assert_eq!(found.len(), 1, "bounty {id} answered more than once");
                return first.clone();
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("no verdict for bounty {id}; got {:?}", self.verdicts());
            }
        }
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    Path(path): Path<String>,
    body: Bytes,
) -> StatusCode {
    state.attempts.fetch_add(1, Ordering::SeqCst);
    let failing = state
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let body: Value = serde_json::from_slice(&body).expect("verdicts are JSON");
    // Recorded before anyone is told, so a woken waiter finds it recorded.
    state
        .verdicts
        .lock()
        .unwrap()
        .push((path.clone(), body.clone()));
    state.changed.notify_waiters();
    if let Some(waiter) = state.waiters.lock().unwrap().remove(&path) {
        let _ = waiter.send(body);
    }
    StatusCode::OK
}

/// An engine served on loopback, in-process.
pub struct RunningEngine<S: Scanner> {
    pub address: SocketAddr,
    pub engine: Arc<Engine<S>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl<S: Scanner> RunningEngine<S> {
    /// Serves `config` with the test secret, and waits until it is ready.
    pub async fn start(config: Config<S::Config>) -> Self {
        let (listener, address) = loopback().await;
        let options = ServeOptions {
            secret: Some(SECRET.to_owned()),
            max_body_bytes: config.server.max_body_bytes,
            stop_after: None,
            setup_retry: Duration::from_millis(100),
        };
        let engine = Arc::new(Engine::<S>::from_config(config).expect("engine builds"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(
            listener,
            Arc::clone(&engine),
            options,
            async {
                let _ = stopped.await;
            },
        ));
        let running = Self {
            address,
            engine,
            stop: Some(stop),
            task,
        };
        running.wait_ready().await;
        running
    }

    async fn wait_ready(&self) {
        for _ in 0..600 {
            if self.engine.is_ready() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("engine not ready after 30 s");
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Graceful shutdown; returns once the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// A webhook POST, signed with `secret` unless it is `None`.
pub async fn post_webhook(
    url: &str,
    event: Option<&str>,
    body: &[u8],
    secret: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_vec());
    if let Some(event) = event {
        request = request.header("X-POLYSWARM-EVENT", event);
    }
    if let Some(secret) = secret {
        request = request.header(
            "X-POLYSWARM-SIGNATURE",
            signature::sign(secret.as_bytes(), body),
        );
    }
    let response = request.send().await.expect("engine reachable");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// A raw HTTP/1.1 POST to `url`'s host; returns the status the server
/// answered. It reads while it writes: a server may answer a large request
/// (413, 431) and close before the request is fully sent, which an ordinary
/// client reports as a broken connection instead of the answer. Panics when
/// no answer comes within 10 seconds.
pub async fn raw_post(url: &str, headers: &[(&str, &[u8])], body: &[u8]) -> u16 {
    tokio::time::timeout(Duration::from_secs(10), raw_post_once(url, headers, body))
        .await
        .expect("no HTTP answer within 10 s")
}

async fn raw_post_once(url: &str, headers: &[(&str, &[u8])], body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut request = format!(
        "POST / HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !response.windows(2).any(|pair| pair == b"\r\n") {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => response.extend_from_slice(&buffer[..read]),
        }
    }
    sending.abort();
    let status_line = String::from_utf8_lossy(&response);
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {status_line:?}"))
}

/// Sends a signed bounty; returns the HTTP status.
pub async fn send_bounty(engine_url: &str, bounty: &Value) -> u16 {
    let body = serde_json::to_vec(bounty).unwrap();
    post_webhook(engine_url, Some("bounty"), &body, Some(SECRET))
        .await
        .0
}

/// A bounty for `artifact_uri`, answered at `response_url`, expiring in
/// `expires_in`.
pub fn bounty(id: &str, artifact_uri: &str, response_url: &str, expires_in: Duration) -> Value {
    let expiration = chrono::Utc::now() + expires_in;
    serde_json::json!({
        "id": id,
        "artifact_type": "file",
        "artifact_uri": artifact_uri,
        "response_url": response_url,
        "expiration": expiration.to_rfc3339(),
        "phase": "assertion",
        "rules": {"min_allowed_bid": 62_500_000_000_000_000u64, "max_allowed_bid": 1_000_000_000_000_000_000u64},
    })
}

/// A bounty for an artifact published with [`ArtifactServer::publish_sample`].
pub fn sample_bounty(
    id: &str,
    (kind, uri): &(ArtifactKind, String),
    response_url: &str,
    expires_in: Duration,
) -> Value {
    let mut bounty = bounty(id, uri, response_url, expires_in);
    bounty["artifact_type"] = kind.as_str().into();
    bounty
}

/// The built engine binary, serving on a free loopback port.
pub struct EngineProcess {
    pub child: Child,
    /// The webhook URL.
    pub url: String,
    /// Its working directory (empty: no stray engine.toml is read).
    _dir: tempfile::TempDir,
}

impl EngineProcess {
    /// Starts `serve` with the test secret, pointed at `backend`, plus
    /// `extra` arguments; waits until it is ready.
    pub async fn start(backend: &Backend, extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_{{project-name}}"));
        command
            .arg("serve")
            .args(["--listen", &address])
            .args(extra)
            .current_dir(dir.path())
            .env("WEBHOOK_SECRET", SECRET)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null());
        backend.configure(&mut command);
        let engine = Self {
            child: command.spawn().unwrap(),
            url: format!("http://{address}/"),
            _dir: dir,
        };
        engine.wait_ready().await;
        engine
    }

    async fn wait_ready(&self) {
        for _ in 0..400 {
            if let Ok(response) = reqwest::get(format!("{}readyz", self.url)).await {
                if response.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("engine at {} never became ready", self.url);
    }

    /// Sends SIGTERM: a graceful shutdown.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit; panics after a minute.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the engine did not exit within a minute"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory now, in MiB (Linux: `VmRSS`).
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .unwrap();
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024.0
    }
}

impl Drop for EngineProcess {
    /// A failed test must not leave its engine running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings of [`TestScanner`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TestScannerConfig {
    /// How long each scan takes.
    pub delay_ms: u64,
    /// Whether scans fail.
    pub fail: bool,
    /// Counts scans, shared with the test.
    #[serde(skip)]
    pub scans: Arc<AtomicUsize>,
}

/// A scriptable scanner for the runtime's failure modes: slow, failing, or
/// plain EICAR detection.
pub struct TestScanner {
    config: TestScannerConfig,
}

impl Scanner for TestScanner {
    type Config = TestScannerConfig;

    const SUPPORTED: &'static [ArtifactKind] = &[ArtifactKind::File];
    const VENDOR: &'static str = "Test Vendor";
    const PRODUCT: &'static str = "testscanner";

    fn new(config: TestScannerConfig) -> anyhow::Result<Self> {
        Ok(Self { config })
    }

    async fn setup(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn teardown(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn scan(&self, artifact: &Artifact) -> anyhow::Result<Analysis> {
        self.config.scans.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.config.delay_ms)).await;
        if self.config.fail {
            anyhow::bail!("backend exploded");
        }
        match artifact {
            Artifact::File(content) if content.as_ref() == EICAR => {
                Ok(Analysis::malicious("EICAR", 1.0))
            }
            _ => Ok(Analysis::benign(0.5)),
        }
    }
}
