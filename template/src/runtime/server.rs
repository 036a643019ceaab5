//! The webhook server: PolySwarm POSTs bounties here.
//!
//! * `POST /` and `POST /<any path>`: signed webhooks. `ping` -> 200,
//!   `bounty` -> 202 at once while the scan runs in the background.
//! * `GET /`: health, with whether the scanner's setup has succeeded.
//! * `GET /readyz`: 200 once the scanner is ready, 503 before.
//!
//! Saturation policy: at most `concurrency` bounties are scanned at a time and
//! `queue_capacity` more wait; beyond that a bounty is refused with 503 and
//! `Retry-After`, and logged, so the sender knows it was not taken. A bounty
//! that got 202 is always answered, even across shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use tokio::net::TcpListener;

use super::bounty::Bounty;
use super::engine::Engine;
use super::scanner::Scanner;
use super::signature::{self, SignatureError};

/// Header naming the event: `bounty` or `ping`.
pub const EVENT_HEADER: &str = "x-polyswarm-event";
/// Header carrying the body's HMAC-SHA256, lowercase hex.
pub const SIGNATURE_HEADER: &str = "x-polyswarm-signature";
/// Header carrying PolySwarm's delivery id.
pub const DELIVERY_HEADER: &str = "x-polyswarm-delivery";

/// How the server is run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The webhook secret; `None` accepts unsigned webhooks (development only).
    pub secret: Option<String>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Stop after answering this many bounties (`--testing N`).
    pub stop_after: Option<u64>,
    /// Wait between setup attempts while the scanner is not ready.
    pub setup_retry: Duration,
}

struct AppState<S: Scanner> {
    engine: Arc<Engine<S>>,
    secret: Option<Vec<u8>>,
}

/// The HTTP routes, for tests that want to drive them directly.
pub fn router<S: Scanner>(engine: Arc<Engine<S>>, options: &ServeOptions) -> Router {
    let state = Arc::new(AppState {
        engine,
        secret: options
            .secret
            .as_ref()
            .map(|secret| secret.as_bytes().to_vec()),
    });
    Router::new()
        .route("/", get(health::<S>).post(webhook::<S>))
        .route("/readyz", get(readiness::<S>))
        .route("/{*path}", post(webhook::<S>))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}

/// Serves webhooks on `listener` until `shutdown` completes (or `stop_after`
/// bounties are answered); then stops accepting, answers every bounty already
/// accepted, and tears the scanner down.
pub async fn serve<S: Scanner>(
    listener: TcpListener,
    engine: Arc<Engine<S>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if options.secret.is_none() {
        tracing::warn!("!!! WEBHOOK SIGNATURES ARE NOT CHECKED: anyone can send bounties. Development only. !!!");
    }
    let setup = tokio::spawn({
        let engine = Arc::clone(&engine);
        let retry = options.setup_retry;
        async move { engine.setup_until_ready(retry).await }
    });

    let stop = {
        let engine = Arc::clone(&engine);
        let stop_after = options.stop_after;
        async move {
            match stop_after {
                Some(count) => tokio::select! {
                    () = shutdown => {}
                    () = engine.wait_answered(count) => {
                        tracing::info!(count, "answered the requested number of bounties");
                    }
                },
                None => shutdown.await,
            }
            tracing::info!("shutting down: no new bounties; answering those accepted");
        }
    };

    tracing::info!(address = %listener.local_addr()?, "serving webhooks");
    axum::serve(listener, router(Arc::clone(&engine), &options))
        .with_graceful_shutdown(stop)
        .await?;

    engine.wait_idle().await;
    setup.abort();
    if let Err(err) = engine.teardown().await {
        tracing::warn!(error = format!("{err:#}"), "scanner teardown failed");
    }
    tracing::info!(answered = engine.answered(), "stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn health<S: Scanner>(State(state): State<Arc<AppState<S>>>) -> Response {
    let engine = &state.engine;
    Json(json!({
        "status": "OK",
        "ready": engine.is_ready(),
        "pending": engine.pending(),
        "answered": engine.answered(),
    }))
    .into_response()
}

async fn readiness<S: Scanner>(State(state): State<Arc<AppState<S>>>) -> Response {
    if state.engine.is_ready() {
        (StatusCode::OK, Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false})),
        )
            .into_response()
    }
}

fn error(status: StatusCode, key: &str, message: impl Into<String>) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), message.into().into());
    (status, Json(body)).into_response()
}

async fn webhook<S: Scanner>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), "error", rejection.body_text()),
    };

    if let Some(secret) = &state.secret {
        let claimed = headers.get(SIGNATURE_HEADER).map(HeaderValue::as_bytes);
        match signature::verify(secret, &body, claimed) {
            Ok(()) => {}
            Err(SignatureError::Missing) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "X-POLYSWARM-SIGNATURE",
                    "Signature not included in headers",
                );
            }
            Err(SignatureError::Mismatch) => {
                tracing::warn!("webhook refused: signature does not match body");
                return error(
                    StatusCode::UNAUTHORIZED,
                    "X-POLYSWARM-SIGNATURE",
                    "Signature does not match body",
                );
            }
        }
    }

    let event = headers
        .get(EVENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_ascii_lowercase());
    match event.as_deref() {
        Some("ping") => (StatusCode::OK, Json(json!({"status": "OK"}))).into_response(),
        Some("bounty") => accept_bounty(&state, &headers, &body),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            "X-POLYSWARM-EVENT",
            format!("unknown event {other:?} (expected bounty or ping)"),
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "X-POLYSWARM-EVENT",
            "Event not included in headers",
        ),
    }
}

fn accept_bounty<S: Scanner>(state: &AppState<S>, headers: &HeaderMap, body: &[u8]) -> Response {
    let delivery = headers
        .get(DELIVERY_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let bounty = match Bounty::from_json(body) {
        Ok(bounty) => bounty,
        Err(problem) => {
            tracing::warn!(%delivery, %problem, "bounty refused");
            return error(StatusCode::BAD_REQUEST, "error", problem);
        }
    };
    let engine = &state.engine;
    if !engine.try_admit() {
        tracing::warn!(bounty = %bounty.id, %delivery, pending = engine.pending(), "engine saturated: bounty refused with 503");
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "engine saturated; retry later",
        );
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("5"));
        return response;
    }
    tracing::info!(bounty = %bounty.id, %delivery, artifact_type = %bounty.artifact_type, "bounty accepted");
    let engine = Arc::clone(engine);
    tokio::spawn(async move { engine.process(bounty).await });
    (StatusCode::ACCEPTED, Json(json!({"status": "ACCEPTED"}))).into_response()
}
