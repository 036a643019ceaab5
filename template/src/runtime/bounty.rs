//! Bounties: what PolySwarm POSTs to the engine, parsed tolerantly where
//! PolySwarm varies and strictly where a mistake would lose the verdict.
//!
//! Tolerant: `id` as integer or string, `artifact_type` in any case,
//! `expiration` with or without a timezone, bid rules as integers or floats,
//! unknown fields ignored. Strict: `artifact_uri` and `response_url` must be
//! there, and bid rules must make sense.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::artifact::ArtifactKind;

/// 1 NCT in wei.
pub const NCT: u128 = 1_000_000_000_000_000_000;

/// Bid rules assumed when a bounty carries none (polyswarm-engine's defaults:
/// 0.0625 NCT to 0.9999 NCT).
pub const DEFAULT_RULES: BidRules = BidRules {
    min_allowed_bid: NCT / 16,
    max_allowed_bid: NCT / 10_000 * 9_999,
};

/// The phase of the bounty: an assertion carries a bid, an arbitration vote does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Engines assert a verdict and bid on it.
    Assertion,
    /// Arbiters vote; no bid.
    Arbitration,
}

/// The range a bid must fall in, in wei.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BidRules {
    /// Smallest bid allowed.
    pub min_allowed_bid: u128,
    /// Largest bid allowed.
    pub max_allowed_bid: u128,
}

impl BidRules {
    /// `min + fraction * (max - min)`, exactly, for `fraction` in 0.0..=1.0.
    ///
    /// The fraction is taken in millionths, and the product is computed
    /// without floats or overflow, so wei amounts past 2^53 stay exact.
    pub fn interpolate(&self, fraction: f64) -> u128 {
        const SCALE: u128 = 1_000_000;
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let parts = (fraction * SCALE as f64).round() as u128;
        let span = self.max_allowed_bid.saturating_sub(self.min_allowed_bid);
        // span * parts / SCALE, split so that no intermediate overflows.
        let scaled = span / SCALE * parts + span % SCALE * parts / SCALE;
        self.clamp(self.min_allowed_bid.saturating_add(scaled))
    }

    /// Keeps `bid` within the rules.
    pub fn clamp(&self, bid: u128) -> u128 {
        bid.clamp(
            self.min_allowed_bid,
            self.max_allowed_bid.max(self.min_allowed_bid),
        )
    }
}

/// One bounty, as PolySwarm sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounty {
    /// PolySwarm's id (an integer or a UUID; kept as text).
    pub id: String,
    /// The artifact type as sent, lower-cased (`file`, `url`, ...).
    pub artifact_type: String,
    /// The artifact type, when it is one this runtime knows.
    pub kind: Option<ArtifactKind>,
    /// Where to download the artifact.
    pub artifact_uri: String,
    /// Where to POST the verdict.
    pub response_url: String,
    /// When PolySwarm stops accepting verdicts, if it said.
    pub expiration: Option<DateTime<Utc>>,
    /// Assertion or arbitration.
    pub phase: Phase,
    /// Bid rules.
    pub rules: BidRules,
    /// The artifact's SHA-256, lower-case hex, when given.
    pub sha256: Option<String>,
    /// The artifact's MIME type, when given.
    pub mimetype: Option<String>,
}

impl Bounty {
    /// Parses a webhook body. The error says which field is wrong.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("body is not valid JSON: {err}"))?;
        let Value::Object(fields) = value else {
            return Err("body must be a JSON object".to_owned());
        };

        let id = match fields.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            Some(_) => return Err("`id` must be a string or an integer".to_owned()),
            None => return Err("missing field `id`".to_owned()),
        };
        let artifact_type = match fields.get("artifact_type") {
            Some(Value::String(kind)) => kind.trim().to_ascii_lowercase(),
            Some(_) => return Err("`artifact_type` must be a string".to_owned()),
            None => "file".to_owned(),
        };
        let kind = artifact_type.parse().ok();
        let artifact_uri = required_string(&fields, "artifact_uri")?;
        let response_url = required_string(&fields, "response_url")?;
        let expiration = match fields.get("expiration") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(parse_expiration(text)?),
            Some(_) => return Err("`expiration` must be an ISO-8601 string".to_owned()),
        };
        let phase = match fields.get("phase") {
            None | Some(Value::Null) => Phase::Assertion,
            Some(Value::String(phase)) => match phase.trim().to_ascii_lowercase().as_str() {
                "assertion" => Phase::Assertion,
                "arbitration" => Phase::Arbitration,
                other => return Err(format!("unknown `phase` {other:?}")),
            },
            Some(_) => return Err("`phase` must be a string".to_owned()),
        };
        let rules = match fields.get("rules") {
            None | Some(Value::Null) => DEFAULT_RULES,
            Some(Value::Object(rules)) => parse_rules(rules)?,
            Some(_) => return Err("`rules` must be an object".to_owned()),
        };
        let sha256 = match fields.get("sha256") {
            None | Some(Value::Null) => None,
            Some(Value::String(hash)) => {
                let hash = hash.trim().to_ascii_lowercase();
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("`sha256` must be 64 hex digits".to_owned());
                }
                Some(hash)
            }
            Some(_) => return Err("`sha256` must be a string".to_owned()),
        };
        let mimetype = fields
            .get("mimetype")
            .and_then(Value::as_str)
            .map(str::to_owned);

        Ok(Self {
            id,
            artifact_type,
            kind,
            artifact_uri,
            response_url,
            expiration,
            phase,
            rules,
            sha256,
            mimetype,
        })
    }
}

fn required_string(fields: &Map<String, Value>, name: &str) -> Result<String, String> {
    match fields.get(name) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Some(Value::String(_)) => Err(format!("`{name}` is empty")),
        Some(_) => Err(format!("`{name}` must be a string")),
        None => Err(format!("missing field `{name}`")),
    }
}

/// ISO-8601 with an offset (`+00:00`, `+0000`, `Z`) or without one (taken as UTC).
pub fn parse_expiration(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(time.and_utc());
    }
    Err(format!(
        "`expiration` {text:?} is not an ISO-8601 date and time"
    ))
}

fn parse_rules(rules: &Map<String, Value>) -> Result<BidRules, String> {
    let min = wei(rules, "min_allowed_bid")?.unwrap_or(DEFAULT_RULES.min_allowed_bid);
    let max = wei(rules, "max_allowed_bid")?.unwrap_or(DEFAULT_RULES.max_allowed_bid.max(min));
    if min > max {
        return Err(format!(
            "`rules`: min_allowed_bid {min} is above max_allowed_bid {max}"
        ));
    }
    Ok(BidRules {
        min_allowed_bid: min,
        max_allowed_bid: max,
    })
}

/// A wei amount: a non-negative integer, possibly written as a float (`6.25e16`).
fn wei(rules: &Map<String, Value>, name: &str) -> Result<Option<u128>, String> {
    let Some(value) = rules.get(name) else {
        return Ok(None);
    };
    let bad = || format!("`rules.{name}` must be a non-negative whole number of wei, not {value}");
    let Value::Number(number) = value else {
        return Err(bad());
    };
    if let Some(amount) = number.as_u64() {
        return Ok(Some(u128::from(amount)));
    }
    match number.as_f64() {
        // Integral, non-negative and representable; 2^128 is u128::MAX + 1.
        Some(amount) if amount >= 0.0 && amount.fract() == 0.0 && amount < 2f64.powi(128) => {
            Ok(Some(amount as u128))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounty(json: &str) -> Result<Bounty, String> {
        Bounty::from_json(json.as_bytes())
    }

    const MINIMAL: &str =
        r#"{"id": 7, "artifact_uri": "http://a/b", "response_url": "http://c/d"}"#;

    #[test]
    fn accepts_the_variants_polyswarm_sends() {
        let parsed = bounty(
            r#"{"id": "a7e8818a-95fc-4487-ad9a-522f6cd88cb2", "artifact_type": "FILE",
                "artifact_uri": "http://a/b", "response_url": "http://c/d",
                "expiration": "2121-06-24T10:03:28.006071", "phase": "assertion",
                "rules": {"min_allowed_bid": 6.25e16, "max_allowed_bid": 1000000000000000000},
                "something_new": [1, 2, 3]}"#,
        )
        .unwrap();
        assert_eq!(parsed.id, "a7e8818a-95fc-4487-ad9a-522f6cd88cb2");
        assert_eq!(parsed.kind, Some(ArtifactKind::File));
        assert_eq!(parsed.rules.min_allowed_bid, 62_500_000_000_000_000);
        assert_eq!(
            parsed.expiration.unwrap().to_rfc3339(),
            "2121-06-24T10:03:28.006071+00:00"
        );

        let parsed = bounty(MINIMAL).unwrap();
        assert_eq!(parsed.id, "7");
        assert_eq!(parsed.phase, Phase::Assertion);
        assert_eq!(parsed.rules, DEFAULT_RULES);
        assert_eq!(parsed.expiration, None);

        for text in [
            "1970-01-01T00:00:00+0000",
            "1970-01-01T00:00:00Z",
            "1970-01-01T01:00:00+01:00",
        ] {
            assert_eq!(parse_expiration(text).unwrap().timestamp(), 0, "{text}");
        }
    }

    #[test]
    fn refuses_what_would_lose_the_verdict() {
        let cases = [
            (r#"{"id": 1, "artifact_uri": "http://a"}"#, "response_url"),
            (r#"{"id": 1, "response_url": "http://a"}"#, "artifact_uri"),
            (
                r#"{"artifact_uri": "http://a", "response_url": "http://a"}"#,
                "id",
            ),
            (r#"[1, 2]"#, "object"),
            (r#"{"id": 1"#, "JSON"),
            (
                r#"{"id": 1, "artifact_uri": "u", "response_url": "r", "expiration": "tomorrow"}"#,
                "expiration",
            ),
            (
                r#"{"id": 1, "artifact_uri": "u", "response_url": "r", "rules": {"min_allowed_bid": -1}}"#,
                "min_allowed_bid",
            ),
            (
                r#"{"id": 1, "artifact_uri": "u", "response_url": "r", "rules": {"min_allowed_bid": 5, "max_allowed_bid": 4}}"#,
                "above",
            ),
            (
                r#"{"id": 1, "artifact_uri": "u", "response_url": "r", "rules": {"max_allowed_bid": 0.5}}"#,
                "max_allowed_bid",
            ),
            (
                r#"{"id": 1, "artifact_uri": "u", "response_url": "r", "sha256": "abc"}"#,
                "sha256",
            ),
        ];
        for (json, named) in cases {
            let err = bounty(json).unwrap_err();
            assert!(err.contains(named), "{json}: {err}");
        }
    }

    #[test]
    fn interpolates_bids_exactly() {
        let rules = BidRules {
            min_allowed_bid: NCT / 16,
            max_allowed_bid: NCT,
        };
        assert_eq!(rules.interpolate(0.0), NCT / 16);
        assert_eq!(rules.interpolate(1.0), NCT);
        assert_eq!(rules.interpolate(0.5), NCT / 16 + (NCT - NCT / 16) / 2);
        assert_eq!(rules.interpolate(f64::NAN), NCT / 16);
        assert_eq!(rules.interpolate(7.0), NCT);

        // Amounts far past 2^53 and near u128::MAX neither round nor overflow.
        let huge = BidRules {
            min_allowed_bid: u128::MAX - 10_000_000,
            max_allowed_bid: u128::MAX,
        };
        assert_eq!(huge.interpolate(0.5), u128::MAX - 5_000_000);
        assert_eq!(huge.interpolate(1.0), u128::MAX);
        let odd = BidRules {
            min_allowed_bid: 0,
            max_allowed_bid: 9_007_199_254_740_993, // 2^53 + 1: not a float
        };
        assert_eq!(odd.interpolate(1.0), 9_007_199_254_740_993);
    }
}
