//! Verdict delivery: POST the verdict to the bounty's `response_url`, retrying
//! with backoff until it lands or the bounty expires.

use std::time::Duration;

use tokio::time::Instant;

use super::fetch::redact;

/// First wait between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx after this many attempts.
    Delivered { attempts: u32 },
    /// No attempt succeeded; the last failure.
    Failed { attempts: u32, last_error: String },
}

/// Posts verdicts.
#[derive(Clone, Debug)]
pub struct Delivery {
    client: reqwest::Client,
    attempt_timeout: Duration,
}

impl Delivery {
    /// A delivery client whose attempts each last at most `attempt_timeout`.
    pub fn new(attempt_timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(attempt_timeout)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            client,
            attempt_timeout,
        })
    }

    /// Sends `body` (JSON) to `url`; retries transient failures until
    /// `give_up_at`. Always makes at least one attempt.
    pub async fn deliver(&self, url: &str, body: Vec<u8>, give_up_at: Instant) -> Outcome {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = give_up_at.saturating_duration_since(Instant::now());
            let timeout = self
                .attempt_timeout
                .min(remaining)
                .max(Duration::from_millis(500));
            let result = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .timeout(timeout)
                .send()
                .await;
            let (error, retryable) = match result {
                Ok(response) if response.status().is_success() => {
                    return Outcome::Delivered { attempts };
                }
                Ok(response) => {
                    let status = response.status();
                    // A 4xx says the verdict itself is refused: sending it again
                    // will not help, except for timeouts and rate limits.
                    let retryable = status.is_server_error()
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    (format!("POST {}: HTTP {status}", redact(url)), retryable)
                }
                Err(err) => (format!("POST {}: {err}", redact(url)), true),
            };
            if !retryable || Instant::now() + backoff >= give_up_at {
                return Outcome::Failed {
                    attempts,
                    last_error: error,
                };
            }
            tracing::debug!(attempts, %error, "verdict delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
