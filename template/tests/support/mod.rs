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

use microengine::runtime::artifact::EICAR;
use microengine::runtime::server::{self, ServeOptions};
use microengine::runtime::signature;
use microengine::runtime::{Analysis, Artifact, ArtifactKind, Config, Engine, Scanner};

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
}

struct ReceiverState {
    verdicts: Mutex<Vec<(String, Value)>>,
    attempts: AtomicUsize,
    fail_first: AtomicUsize,
    changed: Notify,
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
        });
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, state }
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
    state.verdicts.lock().unwrap().push((path, body));
    state.changed.notify_waiters();
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
