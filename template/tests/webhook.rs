//! The webhook runtime over real HTTP on loopback: a signed bounty comes in,
//! the artifact is fetched from a local server, the verdict goes out to a
//! local receiver.

mod support;

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use microengine::runtime::analysis::{engine_version, Environment};
use microengine::runtime::artifact::EICAR;
use microengine::runtime::{signature, Config};
use microengine::scanner::EngineScanner;

use support::{
    bounty, post_webhook, raw_post, sample_argument, sample_bounty, send_bounty, ArtifactServer,
    Backend, EngineProcess, Receiver, RunningEngine, TestScanner, TestScannerConfig, CLEAN_SAMPLE,
    MALICIOUS_SAMPLE, SECRET,
};

const MIN_BID: u64 = 62_500_000_000_000_000;
const MAX_BID: u64 = 1_000_000_000_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

fn test_config(scanner: TestScannerConfig) -> Config<TestScannerConfig> {
    let mut config = Config {
        scanner,
        ..Config::default()
    };
    config.bounties.deadline_margin_secs = 1.0;
    config
}

async fn test_engine(scanner: TestScannerConfig) -> RunningEngine<TestScanner> {
    RunningEngine::start(test_config(scanner)).await
}

#[tokio::test]
async fn a_signed_bounty_gets_the_exact_verdict_from_the_real_scanner() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let config = Config {
        scanner: backend.scanner_config(),
        ..Config::default()
    };
    let engine = RunningEngine::<EngineScanner>::start(config).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;

    let eicar = sample_bounty(
        "eicar",
        &artifacts.publish_sample("eicar", MALICIOUS_SAMPLE),
        &receiver.url("eicar"),
        MINUTE,
    );
    let clean = sample_bounty(
        "clean",
        &artifacts.publish_sample("clean", CLEAN_SAMPLE),
        &receiver.url("clean"),
        MINUTE,
    );
    assert_eq!(send_bounty(&engine.url(), &eicar).await, 202);
    assert_eq!(send_bounty(&engine.url(), &clean).await, 202);

    let verdict = receiver.verdict_for("eicar").await;
    assert_eq!(verdict["verdict"], "malicious", "{verdict}");
    let bid = verdict["bid"].as_u64().unwrap();
    assert!((MIN_BID..=MAX_BID).contains(&bid), "{verdict}");
    let metadata = &verdict["metadata"];
    assert!(!metadata["malware_family"].as_str().unwrap().is_empty());
    assert_eq!(metadata["scanner"]["version"], engine_version());

    let verdict = receiver.verdict_for("clean").await;
    assert_eq!(verdict["verdict"], "benign", "{verdict}");
    engine.shutdown().await;
}

#[tokio::test]
async fn the_verdict_json_is_exact() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;

    let mut request = bounty(
        "1",
        &artifacts.publish("eicar", EICAR),
        &receiver.url("1"),
        MINUTE,
    );
    request["sha256"] = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f".into();
    request["id"] = json!(1);
    request["artifact_type"] = "FILE".into();
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);

    let environment = Environment::current();
    let expected = json!({
        "verdict": "malicious",
        "bid": MAX_BID,
        "metadata": {
            "malware_family": "EICAR",
            "product": "testscanner",
            "vendor": "Test Vendor",
            "scanner": {
                "version": engine_version(),
                "environment": {
                    "operating_system": environment.operating_system,
                    "architecture": environment.architecture,
                },
            },
            "comments": [],
            "heuristic": false,
        },
    });
    assert_eq!(receiver.verdict_for("1").await, expected);
    engine.shutdown().await;
}

#[tokio::test]
async fn ping_and_health_checks() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let (status, body) = post_webhook(&engine.url(), Some("ping"), b"", Some(SECRET)).await;
    assert_eq!((status, body), (200, json!({"status": "OK"})));

    let health = reqwest::get(engine.url()).await.unwrap().text().await;
    let health: Value = serde_json::from_str(&health.unwrap()).unwrap();
    assert_eq!(health["status"], "OK");
    assert_eq!(health["ready"], true);
    let ready = reqwest::get(format!("{}readyz", engine.url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn unsigned_and_badly_signed_webhooks_are_refused() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let body = serde_json::to_vec(&bounty("x", "http://a/b", "http://c/d", MINUTE)).unwrap();

    let (status, reply) = post_webhook(&engine.url(), Some("bounty"), &body, None).await;
    assert_eq!(status, 400);
    assert_eq!(
        reply,
        json!({"X-POLYSWARM-SIGNATURE": "Signature not included in headers"})
    );

    let (status, reply) =
        post_webhook(&engine.url(), Some("bounty"), &body, Some("wrong secret")).await;
    assert_eq!(status, 401);
    assert_eq!(
        reply,
        json!({"X-POLYSWARM-SIGNATURE": "Signature does not match body"})
    );

    // A signature of the wrong length, and one that is not hex.
    for signature in ["abcd", "zz"] {
        let response = reqwest::Client::new()
            .post(engine.url())
            .header("X-POLYSWARM-EVENT", "bounty")
            .header("X-POLYSWARM-SIGNATURE", signature)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }

    // Pings are signed too (over the empty body).
    let (status, _) = post_webhook(&engine.url(), Some("ping"), b"", None).await;
    assert_eq!(status, 400);
    engine.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_answers() {
    let engine = test_engine(TestScannerConfig::default()).await;

    let (status, reply) = post_webhook(&engine.url(), Some("deploy"), b"{}", Some(SECRET)).await;
    assert_eq!(status, 400);
    assert!(reply.to_string().contains("deploy"), "{reply}");

    let (status, _) = post_webhook(&engine.url(), None, b"{}", Some(SECRET)).await;
    assert_eq!(status, 400);

    let (status, reply) =
        post_webhook(&engine.url(), Some("bounty"), b"{\"id\": 1,", Some(SECRET)).await;
    assert_eq!(status, 400);
    assert!(reply["error"].as_str().unwrap().contains("JSON"), "{reply}");

    let missing = br#"{"id": 1, "artifact_uri": "http://a/b"}"#;
    let (status, reply) = post_webhook(&engine.url(), Some("bounty"), missing, Some(SECRET)).await;
    assert_eq!(status, 400);
    assert!(
        reply["error"].as_str().unwrap().contains("response_url"),
        "{reply}"
    );

    let huge = vec![b' '; 2 * 1024 * 1024];
    let signature = signature::sign(SECRET.as_bytes(), &huge);
    let headers: [(&str, &[u8]); 2] = [
        ("x-polyswarm-event", b"bounty"),
        ("x-polyswarm-signature", signature.as_bytes()),
    ];
    assert_eq!(raw_post(&engine.url(), &headers, &huge).await, 413);

    // A webhook on a path (polyswarm-engine serves POST /<queue>) works too.
    let (status, _) = post_webhook(
        &format!("{}engines/mine", engine.url()),
        Some("ping"),
        b"",
        Some(SECRET),
    )
    .await;
    assert_eq!(status, 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn failures_are_answered_unknown_never_benign() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;

    // The artifact is not there.
    let missing = bounty(
        "missing",
        &artifacts.url("nothing-here"),
        &receiver.url("missing"),
        MINUTE,
    );
    // The artifact is not what the bounty says.
    let mut tampered = bounty(
        "tampered",
        &artifacts.publish("clean", "not a malicious file"),
        &receiver.url("tampered"),
        MINUTE,
    );
    tampered["sha256"] = "0".repeat(64).into();
    // An artifact type the engine does not analyse.
    let mut hash = bounty(
        "hash",
        &artifacts.url("clean"),
        &receiver.url("hash"),
        MINUTE,
    );
    hash["artifact_type"] = "url".into();
    // file:// is refused by serve unless allowed.
    let local = bounty(
        "local",
        "file:///etc/hostname",
        &receiver.url("local"),
        MINUTE,
    );

    for request in [&missing, &tampered, &hash, &local] {
        assert_eq!(send_bounty(&engine.url(), request).await, 202);
    }
    for (id, reason) in [
        ("missing", "CANNOT-FETCH"),
        ("tampered", "HASH-MISMATCH"),
        ("hash", "TYPE-UNSUPPORTED"),
        ("local", "not allowed"),
    ] {
        let verdict = receiver.verdict_for(id).await;
        assert_eq!(verdict["verdict"], "unknown", "{id}: {verdict}");
        assert_eq!(verdict["bid"], 0, "{id}: {verdict}");
        let comments = verdict["metadata"]["comments"].to_string();
        assert!(comments.contains(reason), "{id}: {verdict}");
    }
    engine.shutdown().await;

    // A failing scanner.
    let engine = test_engine(TestScannerConfig {
        fail: true,
        ..TestScannerConfig::default()
    })
    .await;
    let request = bounty(
        "broken",
        &artifacts.url("clean"),
        &receiver.url("broken"),
        MINUTE,
    );
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);
    let verdict = receiver.verdict_for("broken").await;
    assert_eq!(verdict["verdict"], "unknown");
    assert!(verdict["metadata"]["comments"]
        .to_string()
        .contains("backend exploded"));
    engine.shutdown().await;
}

#[tokio::test]
async fn data_uri_artifacts_are_scanned() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let receiver = Receiver::start(0).await;
    let uri = format!("data:text/plain;base64,{}", base64_encode(EICAR));
    let request = bounty("data", &uri, &receiver.url("data"), MINUTE);
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);
    assert_eq!(receiver.verdict_for("data").await["verdict"], "malicious");
    engine.shutdown().await;
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_scan_that_would_outlive_the_bounty_is_answered_unknown_in_time() {
    let engine = test_engine(TestScannerConfig {
        delay_ms: 30_000,
        ..TestScannerConfig::default()
    })
    .await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;
    let started = std::time::Instant::now();
    let request = bounty(
        "slow",
        &artifacts.publish("clean", "x"),
        &receiver.url("slow"),
        Duration::from_secs(3),
    );
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);
    let verdict = receiver.verdict_for("slow").await;
    assert_eq!(verdict["verdict"], "unknown");
    assert!(verdict["metadata"]["comments"]
        .to_string()
        .contains("TIMEOUT"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after the expiration: {:?}",
        started.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn an_expired_bounty_is_answered_unknown_without_scanning() {
    let scanner = TestScannerConfig::default();
    let scans = Arc::clone(&scanner.scans);
    let engine = test_engine(scanner).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;
    let mut request = bounty(
        "old",
        &artifacts.publish("eicar", EICAR),
        &receiver.url("old"),
        MINUTE,
    );
    request["expiration"] = "2020-01-01T00:00:00".into();
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);
    let verdict = receiver.verdict_for("old").await;
    assert_eq!(verdict["verdict"], "unknown");
    assert!(verdict["metadata"]["comments"]
        .to_string()
        .contains("EXPIRED"));
    assert_eq!(scans.load(Ordering::SeqCst), 0);
    engine.shutdown().await;
}

#[tokio::test]
async fn delivery_is_retried_until_the_receiver_takes_it() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(3).await;
    let request = bounty(
        "retry",
        &artifacts.publish("eicar", EICAR),
        &receiver.url("retry"),
        MINUTE,
    );
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);
    assert_eq!(receiver.verdict_for("retry").await["verdict"], "malicious");
    assert_eq!(receiver.attempts(), 4);
    engine.shutdown().await;
}

#[tokio::test]
async fn arbitration_votes_carry_no_bid() {
    let engine = test_engine(TestScannerConfig::default()).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;
    let mut request = bounty(
        "vote",
        &artifacts.publish("eicar", EICAR),
        &receiver.url("vote"),
        MINUTE,
    );
    request["phase"] = "arbitration".into();
    assert_eq!(send_bounty(&engine.url(), &request).await, 202);
    let verdict = receiver.verdict_for("vote").await;
    assert_eq!(verdict["verdict"], "malicious");
    let keys: Vec<&String> = verdict.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["metadata", "verdict"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_hundred_concurrent_bounties_get_a_hundred_verdicts() {
    let engine = test_engine(TestScannerConfig {
        delay_ms: 20,
        ..TestScannerConfig::default()
    })
    .await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;
    let eicar = artifacts.publish("eicar", EICAR);
    let clean = artifacts.publish("clean", "not a malicious file");

    let mut sends = Vec::new();
    for i in 0..100 {
        let uri = if i % 2 == 0 { &eicar } else { &clean };
        let request = bounty(&i.to_string(), uri, &receiver.url(&i.to_string()), MINUTE);
        let url = engine.url();
        sends.push(tokio::spawn(
            async move { send_bounty(&url, &request).await },
        ));
    }
    for send in sends {
        assert_eq!(send.await.unwrap(), 202);
    }
    let verdicts = receiver.wait_for(100, WAIT).await;
    engine.shutdown().await;

    let mut paths: Vec<String> = verdicts.iter().map(|(path, _)| path.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len(),
        100,
        "a bounty was answered twice or not at all"
    );
    assert_eq!(receiver.verdicts().len(), 100);
    for (path, verdict) in verdicts {
        let id: usize = path.trim_start_matches("verdict/").parse().unwrap();
        let expected = if id % 2 == 0 { "malicious" } else { "benign" };
        assert_eq!(verdict["verdict"], expected, "{path}");
    }
}

#[tokio::test]
async fn a_saturated_engine_refuses_with_503_instead_of_dropping() {
    let mut config = test_config(TestScannerConfig {
        delay_ms: 2_000,
        ..TestScannerConfig::default()
    });
    config.bounties.concurrency = 1;
    config.bounties.queue_capacity = 1;
    let engine = RunningEngine::<TestScanner>::start(config).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;
    let uri = artifacts.publish("clean", "x");
    let mut statuses = Vec::new();
    for i in 0..3 {
        let id = format!("s{i}");
        let request = bounty(&id, &uri, &receiver.url(&id), MINUTE);
        statuses.push(send_bounty(&engine.url(), &request).await);
    }
    assert_eq!(statuses, [202, 202, 503]);
    // Both accepted bounties are answered.
    receiver.wait_for(2, WAIT).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn sigterm_answers_every_accepted_bounty_before_exit() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let mut engine = EngineProcess::start(&backend, &[]).await;
    // Slow artifacts keep the bounties in flight when SIGTERM arrives.
    let artifacts = ArtifactServer::start(Duration::from_millis(1_500)).await;
    let receiver = Receiver::start(0).await;
    let eicar = artifacts.publish_sample("eicar", MALICIOUS_SAMPLE);
    for i in 0..5 {
        let id = format!("t{i}");
        let request = sample_bounty(&id, &eicar, &receiver.url(&id), MINUTE);
        assert_eq!(send_bounty(&engine.url, &request).await, 202);
    }
    assert!(receiver.verdicts().is_empty());
    engine.terminate();
    let status = engine.wait().await;
    assert!(status.success(), "{status:?}");
    // Everything was delivered before the process exited.
    let verdicts = receiver.verdicts();
    assert_eq!(verdicts.len(), 5, "{verdicts:?}");
    for (_, verdict) in verdicts {
        assert_eq!(verdict["verdict"], "malicious");
    }
}

#[tokio::test]
async fn testing_mode_exits_after_n_bounties() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let mut engine = EngineProcess::start(&backend, &["--testing", "2"]).await;
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Receiver::start(0).await;
    let clean = artifacts.publish_sample("clean", CLEAN_SAMPLE);
    for i in 0..2 {
        let id = format!("n{i}");
        let request = sample_bounty(&id, &clean, &receiver.url(&id), MINUTE);
        assert_eq!(send_bounty(&engine.url, &request).await, 202);
    }
    let status = tokio::time::timeout(WAIT, engine.wait())
        .await
        .expect("engine exits after --testing 2");
    assert!(status.success());
    let verdicts = receiver.verdicts();
    assert_eq!(verdicts.len(), 2);
    for (_, verdict) in verdicts {
        assert_eq!(verdict["verdict"], "benign");
    }
}

#[tokio::test]
async fn send_bounty_tries_a_running_engine_end_to_end() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = EngineProcess::start(&backend, &[]).await;
    let url = engine.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let kind = MALICIOUS_SAMPLE.0;
    let artifact = sample_argument(dir.path(), MALICIOUS_SAMPLE, "eicar.com");

    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_{{project-name}}"))
            .args(["send-bounty", "--engine", &url, "--secret", SECRET])
            .args(["--type", kind.as_str(), &artifact])
            .current_dir(dir.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    drop(engine);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["verdict"], "malicious", "{verdict}");
    assert!(verdict["bid"].as_u64().unwrap() > 0);
}
