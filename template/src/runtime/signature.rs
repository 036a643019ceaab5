//! Webhook signatures: HMAC-SHA256 of the raw body, keyed with the webhook
//! secret, sent as lowercase hex in `X-POLYSWARM-SIGNATURE`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-POLYSWARM-SIGNATURE` header (answered 400).
    Missing,
    /// The header does not match the body (answered 401).
    Mismatch,
}

/// The signature PolySwarm sends for `body`: lowercase hex.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `header` against the body, in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    // Not hex, or not 32 bytes of it: it cannot match.
    let claimed = hex::decode(header.trim_ascii()).map_err(|_| SignatureError::Mismatch)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed outside Rust:
    //   printf '{"id":1}' | openssl dgst -sha256 -hmac 'secret'
    const BODY: &[u8] = br#"{"id":1}"#;
    const OPENSSL_HMAC: &str = "03def589620c813f198fd03d7967e292b163ef0435ebf43071ce0e9519763cb7";

    #[test]
    fn matches_an_hmac_computed_by_openssl() {
        assert_eq!(sign(b"secret", BODY), OPENSSL_HMAC);
        assert_eq!(
            verify(b"secret", BODY, Some(OPENSSL_HMAC.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_wrong_and_malformed_signatures() {
        assert_eq!(verify(b"secret", BODY, None), Err(SignatureError::Missing));
        let other = sign(b"other secret", BODY);
        assert_eq!(
            verify(b"secret", BODY, Some(other.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        let short = &OPENSSL_HMAC[..10];
        assert_eq!(
            verify(b"secret", BODY, Some(short.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", BODY, Some(b"not hex")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", b"{\"id\":2}", Some(OPENSSL_HMAC.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }
}
