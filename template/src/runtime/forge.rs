//! `send-bounty`: try an engine end to end without the marketplace.
//!
//! Forges a bounty for a local file, a URL or a `data:` URI, signs it like
//! PolySwarm does, POSTs it to a running engine, and waits on a local
//! `response_url` for the verdict. A local file is served from a loopback
//! HTTP server, so the engine fetches it exactly as it would a real artifact.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::artifact::ArtifactKind;
use super::bounty::{Phase, DEFAULT_RULES};
use super::server::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
use super::signature;

/// What to send.
#[derive(Clone, Debug)]
pub struct ForgeRequest {
    /// The engine's webhook URL, e.g. `http://127.0.0.1:8000/`.
    pub engine_url: String,
    /// The webhook secret the engine was started with.
    pub secret: Option<String>,
    /// A local path, an `http(s)://` URL or a `data:` URI.
    pub artifact: String,
    /// File or URL artifact.
    pub kind: ArtifactKind,
    /// Assertion (with bid) or arbitration.
    pub phase: Phase,
    /// Bounty lifetime.
    pub expires_in: Duration,
}

type VerdictSlot = Arc<Mutex<Option<oneshot::Sender<Value>>>>;

/// Sends the bounty and returns the verdict the engine posted back.
pub async fn send_bounty(request: ForgeRequest) -> anyhow::Result<Value> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot open a local port for the verdict")?;
    let local = listener.local_addr()?;

    // What the engine fetches from artifact_uri.
    let (artifact_uri, served): (String, Bytes) = match request.kind {
        ArtifactKind::Url => (
            format!("http://{local}/artifact"),
            Bytes::from(request.artifact.clone()),
        ),
        ArtifactKind::File if is_uri(&request.artifact) => (request.artifact.clone(), Bytes::new()),
        ArtifactKind::File => {
            let content = tokio::fs::read(&request.artifact)
                .await
                .with_context(|| format!("cannot read {}", request.artifact))?;
            (format!("http://{local}/artifact"), Bytes::from(content))
        }
    };
    let sha256 = (!served.is_empty() || !is_uri(&request.artifact))
        .then(|| hex::encode(Sha256::digest(&served)));

    let (verdict_tx, verdict_rx) = oneshot::channel();
    let slot: VerdictSlot = Arc::new(Mutex::new(Some(verdict_tx)));
    let app = Router::new()
        .route("/artifact", get(move || async move { served }))
        .route("/verdict", post(receive_verdict))
        .with_state(slot);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let expiration = Utc::now() + request.expires_in;
    let mut bounty = json!({
        "id": format!("local-{}", Utc::now().timestamp_micros()),
        "artifact_type": request.kind.as_str(),
        "artifact_uri": artifact_uri,
        "response_url": format!("http://{local}/verdict"),
        "expiration": expiration.to_rfc3339(),
        "phase": match request.phase { Phase::Assertion => "assertion", Phase::Arbitration => "arbitration" },
        "rules": {
            "min_allowed_bid": DEFAULT_RULES.min_allowed_bid as u64,
            "max_allowed_bid": DEFAULT_RULES.max_allowed_bid as u64,
        },
    });
    if let Some(sha256) = sha256 {
        bounty["sha256"] = sha256.into();
    }
    let body = serde_json::to_vec(&bounty)?;

    let client = reqwest::Client::new();
    let secret = request.secret.as_deref();
    let response = bounty_webhook(&client, &request.engine_url, secret, body)
        .header(
            DELIVERY_HEADER,
            format!("send-bounty-{}", Utc::now().timestamp_micros()),
        )
        .send()
        .await
        .with_context(|| format!("cannot reach the engine at {}", request.engine_url))?;
    let status = response.status();
    if status != StatusCode::ACCEPTED {
        let text = response.text().await.unwrap_or_default();
        bail!("the engine answered HTTP {status}: {text}");
    }

    let verdict = tokio::time::timeout(request.expires_in + Duration::from_secs(5), verdict_rx)
        .await
        .context("no verdict arrived before the bounty expired")?
        .context("verdict receiver closed")?;
    server.abort();
    Ok(verdict)
}

/// The webhook PolySwarm would send for a bounty `body` (JSON): POSTed to
/// `engine_url` as event `bounty`, signed with `secret` when there is one.
/// Also what the benchmark and the load tests send.
pub fn bounty_webhook(
    client: &reqwest::Client,
    engine_url: &str,
    secret: Option<&str>,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut post = client
        .post(engine_url)
        .header(EVENT_HEADER, "bounty")
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        post = post.header(SIGNATURE_HEADER, signature::sign(secret.as_bytes(), &body));
    }
    post.body(body)
}

fn is_uri(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["http://", "https://", "data:", "file://"]
        .iter()
        .any(|prefix| lower.starts_with(prefix))
}

async fn receive_verdict(State(slot): State<VerdictSlot>, body: Bytes) -> StatusCode {
    let Ok(verdict) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Some(sender) = slot.lock().expect("verdict slot lock").take() {
        let _ = sender.send(verdict);
    }
    StatusCode::OK
}
