//! Artifact download: `http(s)://` streamed with a size cap, `data:` URIs,
//! and `file://` only where explicitly allowed.
//!
//! Time limits come from the caller (the bounty's deadline wraps the whole
//! fetch); this module enforces the connect timeout and the size cap.

use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};

use super::config::FetchConfig;

/// Downloads artifacts.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: u64,
    allow_file_uris: bool,
}

impl Fetcher {
    /// A fetcher with the given limits.
    pub fn new(config: &FetchConfig, allow_file_uris: bool) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(config.connect_timeout_secs))
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            client,
            max_bytes: config.max_artifact_bytes,
            allow_file_uris,
        })
    }

    /// The artifact at `uri`, or why it could not be had.
    pub async fn fetch(&self, uri: &str) -> Result<Bytes, String> {
        let scheme = uri
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http" | "https") => self.fetch_http(uri).await,
            Some("data") => self.check_size(decode_data_uri(uri)?),
            Some("file") if self.allow_file_uris => self.fetch_file(uri).await,
            Some("file") => {
                Err("file:// artifact URIs are not allowed (bounties.allow_file_uris)".to_owned())
            }
            _ => Err(format!(
                "unsupported artifact URI scheme in {}",
                redact(uri)
            )),
        }
    }

    async fn fetch_http(&self, uri: &str) -> Result<Bytes, String> {
        let mut response = self
            .client
            .get(uri)
            .send()
            .await
            .map_err(|err| format!("GET {}: {err}", redact(uri)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {}: HTTP {status}", redact(uri)));
        }
        let announced = response.content_length().unwrap_or(0);
        if announced > self.max_bytes {
            return Err(self.too_large(announced));
        }
        // Room for the announced size up front: a buffer grown chunk by chunk
        // is copied each time it doubles, and the freed smaller ones stay
        // with the allocator, which several artifacts in flight turn into
        // real memory. A large buffer is mapped lazily (runtime/memory.rs),
        // so a Content-Length that overstates costs address space, not RAM.
        let mut content = BytesMut::with_capacity(announced as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| format!("GET {}: {err}", redact(uri)))?
        {
            let total = content.len() as u64 + chunk.len() as u64;
            if total > self.max_bytes {
                return Err(self.too_large(total));
            }
            content.extend_from_slice(&chunk);
        }
        Ok(content.freeze())
    }

    async fn fetch_file(&self, uri: &str) -> Result<Bytes, String> {
        let path = uri["file:".len()..].trim_start_matches("//localhost");
        let path = path.strip_prefix("//").unwrap_or(path);
        let length = tokio::fs::metadata(path)
            .await
            .map_err(|err| format!("{uri}: {err}"))?
            .len();
        if length > self.max_bytes {
            return Err(self.too_large(length));
        }
        let content = tokio::fs::read(path)
            .await
            .map_err(|err| format!("{uri}: {err}"))?;
        self.check_size(Bytes::from(content))
    }

    fn check_size(&self, content: Bytes) -> Result<Bytes, String> {
        if content.len() as u64 > self.max_bytes {
            return Err(self.too_large(content.len() as u64));
        }
        Ok(content)
    }

    fn too_large(&self, length: u64) -> String {
        format!(
            "artifact is larger than the limit ({length} > {} bytes, fetch.max_artifact_bytes)",
            self.max_bytes
        )
    }
}

/// Decodes `data:[<media type>][;base64],<data>` (RFC 2397).
pub fn decode_data_uri(uri: &str) -> Result<Bytes, String> {
    let rest = uri
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("data:"))
        .map(|_| &uri[5..])
        .ok_or_else(|| "not a data: URI".to_owned())?;
    let (header, payload) = rest
        .split_once(',')
        .ok_or_else(|| "data: URI has no ',' before its data".to_owned())?;
    let is_base64 = header
        .rsplit(';')
        .next()
        .is_some_and(|param| param.trim().eq_ignore_ascii_case("base64"));
    let bytes = percent_decode(payload)?;
    if is_base64 {
        let compact: Vec<u8> = bytes
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(Bytes::from)
            .map_err(|err| format!("data: URI has bad base64: {err}"))
    } else {
        Ok(Bytes::from(bytes))
    }
}

fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("data: URI has a bad percent escape at byte {i}"))?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Ok(decoded)
}

/// A URI fit for logs: no query string (it may hold a signed token).
pub fn redact(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_data_uris() {
        assert_eq!(
            decode_data_uri("data:text/plain;base64,aGVsbG8=").unwrap(),
            "hello"
        );
        assert_eq!(
            decode_data_uri("data:,hello%20world").unwrap(),
            "hello world"
        );
        assert_eq!(
            decode_data_uri("DATA:;BASE64,aGVs%0AbG8=").unwrap(),
            "hello"
        );
        assert_eq!(decode_data_uri("data:,").unwrap(), "");
        assert!(decode_data_uri("data:text/plain")
            .unwrap_err()
            .contains("','"));
        assert!(decode_data_uri("data:;base64,!!!")
            .unwrap_err()
            .contains("base64"));
        assert!(decode_data_uri("data:,%zz")
            .unwrap_err()
            .contains("percent"));
        assert!(decode_data_uri("data:,%4").unwrap_err().contains("percent"));
        assert!(decode_data_uri("http://x").is_err());
        assert!(decode_data_uri("dat").is_err());
    }

    #[tokio::test]
    async fn refuses_file_uris_unless_allowed_and_caps_size() {
        let config = FetchConfig {
            max_artifact_bytes: 4,
            ..FetchConfig::default()
        };
        let strict = Fetcher::new(&config, false).unwrap();
        assert!(strict
            .fetch("file:///etc/hostname")
            .await
            .unwrap_err()
            .contains("not allowed"));
        assert!(strict
            .fetch("data:,12345")
            .await
            .unwrap_err()
            .contains("larger"));
        assert_eq!(strict.fetch("data:,1234").await.unwrap(), "1234");
        assert!(strict
            .fetch("ftp://x/y")
            .await
            .unwrap_err()
            .contains("scheme"));
    }
}
