//! The ClamAV scanner against a real clamd (see `support/clamd.rs`).

mod support;

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use microengine::clamd::{ClamdError, ScanReply};
use microengine::runtime::artifact::EICAR;
use microengine::runtime::{Analysis, Artifact, Config, Engine, Scanner, Verdict};
use microengine::scanner::{ClamAvScanner, ScannerConfig};

use support::clamd::skip;
use support::Backend;

/// One MiB: the test clamd's StreamMaxLength and the client's limit.
const LIMIT: usize = 1024 * 1024;

async fn ready_engine(config: ScannerConfig) -> Engine<ClamAvScanner> {
    let engine = Engine::<ClamAvScanner>::from_config(Config {
        scanner: config,
        ..Config::default()
    })
    .unwrap();
    engine.scanner().setup().await.unwrap();
    engine
}

async fn scan(engine: &Engine<ClamAvScanner>, content: Vec<u8>) -> Analysis {
    engine.analyze(&Artifact::File(Bytes::from(content))).await
}

fn comments(analysis: &Analysis) -> String {
    analysis.metadata.comments.join(" | ")
}

#[tokio::test]
async fn eicar_alone_and_embedded_is_malicious() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = ready_engine(backend.scanner_config()).await;

    let alone = scan(&engine, EICAR.to_vec()).await;
    assert_eq!(alone.verdict, Verdict::Malicious, "{alone:?}");
    assert_eq!(
        alone.metadata.malware_family,
        "Eicar-Test-Signature.UNOFFICIAL"
    );
    assert!(alone.metadata.scanner.vendor_version.is_some());

    let mut embedded = vec![0x5a; 512 * 1024];
    embedded[300_000..300_000 + EICAR.len()].copy_from_slice(EICAR);
    let embedded = scan(&engine, embedded).await;
    assert_eq!(embedded.verdict, Verdict::Malicious, "{embedded:?}");
}

#[tokio::test]
async fn archives_from_clamav_testfiles_are_malicious() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let testfiles = Path::new("/usr/share/clamav-testfiles");
    if !testfiles.is_dir() {
        skip("clamav-testfiles is not installed");
        return;
    }
    let engine = ready_engine(backend.scanner_config()).await;
    for name in ["clam.zip", "clam.7z", "clam.exe"] {
        let analysis = scan(&engine, std::fs::read(testfiles.join(name)).unwrap()).await;
        assert_eq!(analysis.verdict, Verdict::Malicious, "{name}: {analysis:?}");
        assert_eq!(
            analysis.metadata.malware_family,
            "ClamAV-Test-File.UNOFFICIAL"
        );
    }
}

#[tokio::test]
async fn clean_and_empty_files_are_benign() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = ready_engine(backend.scanner_config()).await;
    let clean = scan(&engine, b"not a malicious file".to_vec()).await;
    assert_eq!(clean.verdict, Verdict::Benign, "{clean:?}");
    let empty = scan(&engine, Vec::new()).await;
    assert_eq!(empty.verdict, Verdict::Benign, "{empty:?}");
}

#[tokio::test]
async fn the_stream_limit_is_exact_and_over_it_is_unknown() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = ready_engine(backend.scanner_config()).await;

    let at_limit = scan(&engine, vec![b'a'; LIMIT]).await;
    assert_eq!(at_limit.verdict, Verdict::Benign, "{at_limit:?}");

    for size in [LIMIT + 1, 10 * LIMIT] {
        let over = scan(&engine, vec![b'a'; size]).await;
        assert_eq!(over.verdict, Verdict::Unknown, "{size}: {over:?}");
        assert!(comments(&over).contains("size limit"), "{size}: {over:?}");
    }
}

#[tokio::test]
async fn clamds_own_size_limit_is_reported_as_such() {
    let Some(backend) = Backend::start() else {
        return;
    };
    // The client allows more than clamd does: clamd cuts the upload short,
    // and its reason must come through rather than a broken pipe.
    let config = ScannerConfig {
        max_stream_bytes: 8 * LIMIT as u64,
        ..backend.scanner_config()
    };
    let engine = ready_engine(config).await;
    let client = engine.scanner().client();
    let error = client.instream(&vec![b'a'; 4 * LIMIT]).await.unwrap_err();
    assert!(
        matches!(error, ClamdError::SizeLimitExceeded(_)),
        "{error:?}"
    );
    let over = scan(&engine, vec![b'a'; 4 * LIMIT]).await;
    assert_eq!(over.verdict, Verdict::Unknown);
    assert!(comments(&over).contains("size limit exceeded"), "{over:?}");
}

#[tokio::test]
async fn clamd_down_is_unknown_and_the_engine_recovers() {
    let Some(mut backend) = Backend::start() else {
        return;
    };
    let engine = ready_engine(backend.scanner_config()).await;
    assert_eq!(
        scan(&engine, EICAR.to_vec()).await.verdict,
        Verdict::Malicious
    );

    backend.stop();
    for content in [EICAR.to_vec(), b"not a malicious file".to_vec()] {
        let down = scan(&engine, content).await;
        assert_eq!(down.verdict, Verdict::Unknown, "{down:?}");
        assert!(comments(&down).contains("refused"), "{down:?}");
    }

    backend.restart();
    assert_eq!(
        scan(&engine, EICAR.to_vec()).await.verdict,
        Verdict::Malicious
    );
    assert_eq!(
        scan(&engine, b"not a malicious file".to_vec())
            .await
            .verdict,
        Verdict::Benign
    );
}

#[tokio::test]
async fn setup_names_the_address_and_the_last_failure_when_clamd_never_comes() {
    let Some(mut backend) = Backend::start() else {
        return;
    };
    backend.stop();
    let scanner = ClamAvScanner::new(ScannerConfig {
        startup_timeout_secs: 1.0,
        ..backend.scanner_config()
    })
    .unwrap();
    let error = format!("{:#}", scanner.setup().await.unwrap_err());
    assert!(
        error.contains(&format!("127.0.0.1:{}", backend.port)),
        "{error}"
    );
    assert!(error.contains("refused"), "{error}");
}

#[tokio::test]
async fn tcp_and_unix_socket_both_work() {
    let Some(backend) = Backend::start() else {
        return;
    };
    for config in [backend.scanner_config(), backend.unix_scanner_config()] {
        let host = config.host.clone();
        let engine = ready_engine(config).await;
        let client = engine.scanner().client();
        client.ping().await.unwrap();
        assert_eq!(
            client.instream(EICAR).await.unwrap(),
            ScanReply::Found("Eicar-Test-Signature.UNOFFICIAL".to_owned()),
            "{host}"
        );
        let version = client.version().await.unwrap();
        assert!(!version.engine.is_empty(), "{host}");
    }
}

#[tokio::test]
async fn thirty_two_concurrent_scans_against_max_threads_2_all_complete() {
    let Some(backend) = Backend::start_with("MaxThreads 2\nMaxQueue 2") else {
        return;
    };
    let config = ScannerConfig {
        max_connections: 2,
        ..backend.scanner_config()
    };
    let engine = Arc::new(ready_engine(config).await);
    let mut scans = Vec::new();
    for i in 0..32 {
        let engine = Arc::clone(&engine);
        scans.push(tokio::spawn(async move {
            let mut content = vec![b'x'; 256 * 1024];
            if i % 2 == 0 {
                content[1000..1000 + EICAR.len()].copy_from_slice(EICAR);
            }
            (i, scan(&engine, content).await)
        }));
    }
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        let mut results = Vec::new();
        for scan in scans {
            results.push(scan.await.unwrap());
        }
        results
    })
    .await
    .expect("all 32 scans complete");
    for (i, analysis) in outcome {
        let expected = if i % 2 == 0 {
            Verdict::Malicious
        } else {
            Verdict::Benign
        };
        assert_eq!(analysis.verdict, expected, "scan {i}: {analysis:?}");
    }
}

#[tokio::test]
async fn a_clamd_scan_limit_is_not_malware() {
    let Some(backend) =
        Backend::start_with("MaxFileSize 100K\nMaxScanSize 100K\nAlertExceedsMax yes")
    else {
        return;
    };
    let engine = ready_engine(backend.scanner_config()).await;
    let limited = scan(&engine, vec![b'a'; 512 * 1024]).await;
    assert_eq!(limited.verdict, Verdict::Unknown, "{limited:?}");
    assert!(
        comments(&limited).contains("Heuristics.Limits.Exceeded"),
        "{limited:?}"
    );
}
