//! Hostile webhooks: whatever a broken or malicious sender posts gets a clear
//! 4xx, or is accepted and answered `unknown`; nothing crashes or hangs the
//! engine.
//!
//! The bodies are in `tests/fixtures/hostile/`, correctly signed so that they
//! reach the parser: `400-*.json` must be refused with an error naming the
//! problem, `202-*.json` accepted and answered `unknown`, bid 0, with the
//! comment their `expect_comment` field names (a field the engine must
//! ignore). In them `RESPONSE_URL` becomes the test receiver and
//! `ARTIFACT_TYPE` the kind this engine analyses, so each case reaches the
//! check it is about. Add a file to add a case.

mod support;

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use microengine::runtime::signature;

use support::{
    raw_post, sample_bounty, ArtifactServer, Backend, EngineProcess, Receiver, MALICIOUS_SAMPLE,
    SECRET,
};

/// One webhook POST with raw headers; `None` when the connection failed.
async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Option<(u16, Value)> {
    let response = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// The headers of a bounty webhook, signed for `body`.
fn signed(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-polyswarm-event", HeaderValue::from_static("bounty"));
    let signature = signature::sign(SECRET.as_bytes(), body);
    headers.insert("x-polyswarm-signature", signature.parse().unwrap());
    headers
}

#[tokio::test]
async fn hostile_webhooks_get_clear_answers_and_the_engine_survives() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let mut engine = EngineProcess::start(&backend, &[]).await;
    let receiver = Receiver::start(0).await;
    // A hang is a failure too.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus is missing");
    let mut accepted = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let expected: u16 = name[..3].parse().expect("files are named NNN-*.json");
        let body = std::fs::read_to_string(path)
            .unwrap()
            .replace("RESPONSE_URL", &receiver.url(&name))
            .replace("ARTIFACT_TYPE", MALICIOUS_SAMPLE.0.as_str())
            .into_bytes();
        let (status, reply) = post(&client, &engine.url, signed(&body), body.clone())
            .await
            .unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(status, expected, "{name}: {reply}");
        if status == 400 {
            let message = reply["error"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{name}: no error message in {reply}");
        } else {
            let fixture: Value = serde_json::from_slice(&body).unwrap();
            let reason = fixture["expect_comment"].as_str().expect("expect_comment");
            accepted.push((name, reason.to_owned()));
        }
    }

    // Not the body but the headers.
    let body = br#"{"id": 1, "artifact_uri": "data:,x", "response_url": "http://127.0.0.1:1/"}"#;
    let good = signed(body);
    let right = good["x-polyswarm-signature"].to_str().unwrap().to_owned();
    let mut cases: Vec<(&str, HeaderMap, Vec<u8>, u16)> = Vec::new();
    for (what, signature) in [
        ("signature one digit short", right[1..].to_owned()),
        ("signature twice as long", right.repeat(2)),
        ("signature empty", String::new()),
        ("signature not hex", "z".repeat(64)),
    ] {
        let mut headers = good.clone();
        headers.insert("x-polyswarm-signature", signature.parse().unwrap());
        cases.push((what, headers, body.to_vec(), 401));
    }
    let mut headers = good.clone();
    headers.insert(
        "x-polyswarm-signature",
        HeaderValue::from_bytes(b"\xff\xfe\xfd").unwrap(),
    );
    cases.push(("signature not ASCII", headers, body.to_vec(), 401));
    let mut headers = good.clone();
    headers.insert(
        "x-polyswarm-event",
        HeaderValue::from_bytes(b"bou\xffnty").unwrap(),
    );
    cases.push(("event not UTF-8", headers, body.to_vec(), 400));
    let not_utf8 = b"{\"id\": \"\xff\xfe\", \"artifact_uri\": \"data:,x\"}".to_vec();
    cases.push(("body not UTF-8", signed(&not_utf8), not_utf8, 400));
    for (what, headers, body, expected) in cases {
        let (status, reply) = post(&client, &engine.url, headers, body)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(status, expected, "{what}: {reply}");
    }

    // Too large to take: answered before the request is fully sent.
    let huge_header = "x".repeat(1024 * 1024);
    let status = raw_post(
        &engine.url,
        &[
            ("x-polyswarm-event", b"bounty"),
            ("x-polyswarm-delivery", huge_header.as_bytes()),
        ],
        body,
    )
    .await;
    assert_eq!(status, 431, "a 1 MiB header");
    let oversized = vec![b' '; 4 * 1024 * 1024];
    let signature = signature::sign(SECRET.as_bytes(), &oversized);
    let status = raw_post(
        &engine.url,
        &[
            ("x-polyswarm-event", b"bounty"),
            ("x-polyswarm-signature", signature.as_bytes()),
        ],
        &oversized,
    )
    .await;
    assert_eq!(status, 413, "a 4 MiB body");

    // What was accepted is answered `unknown`, for the expected reason:
    // nothing was scanned.
    for (name, reason) in &accepted {
        let verdict = receiver.verdict_for(name).await;
        assert_eq!(verdict["verdict"], "unknown", "{name}: {verdict}");
        assert_eq!(verdict["bid"], 0, "{name}: {verdict}");
        let comments = verdict["metadata"]["comments"].as_array().unwrap();
        assert!(
            comments
                .iter()
                .any(|comment| comment.as_str().unwrap().starts_with(reason.as_str())),
            "{name}: expected a comment starting {reason}, got {verdict}"
        );
    }

    // Still alive, still scanning.
    assert!(
        engine.child.try_wait().unwrap().is_none(),
        "the engine died"
    );
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let eicar = artifacts.publish_sample("eicar", MALICIOUS_SAMPLE);
    let bounty = sample_bounty(
        "after",
        &eicar,
        &receiver.url("after"),
        Duration::from_secs(60),
    );
    let body = serde_json::to_vec(&bounty).unwrap();
    let (status, _) = post(&client, &engine.url, signed(&body), body)
        .await
        .unwrap();
    assert_eq!(status, 202);
    assert_eq!(receiver.verdict_for("after").await["verdict"], "malicious");
}
