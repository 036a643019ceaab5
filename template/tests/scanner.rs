//! The scanner's contract, on the engine's real scanner{% if backend == "clamav" %} and a real clamd{% endif %}.

mod support;

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use bytes::Bytes;

use microengine::runtime::{Artifact, Config, Engine, Scanner, Verdict};
use microengine::scanner::EngineScanner;

use support::{sample, Backend, CLEAN_SAMPLE, MALICIOUS_SAMPLE};

fn engine(backend: &Backend) -> Engine<EngineScanner> {
    let config = Config {
        scanner: backend.scanner_config(),
        ..Config::default()
    };
    Engine::from_config(config).expect("engine builds")
}

#[tokio::test]
async fn eicar_is_malicious_and_a_clean_sample_benign() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = engine(&backend);
    engine.scanner().setup().await.unwrap();

    let eicar = engine.analyze(&sample(MALICIOUS_SAMPLE)).await;
    assert_eq!(eicar.verdict, Verdict::Malicious, "{eicar:?}");
    assert!(!eicar.metadata.malware_family.is_empty());
    assert_eq!(eicar.metadata.product, EngineScanner::PRODUCT);
    assert_eq!(eicar.metadata.scanner.version, env!("CARGO_PKG_VERSION"));

    let clean = engine.analyze(&sample(CLEAN_SAMPLE)).await;
    assert_eq!(clean.verdict, Verdict::Benign, "{clean:?}");
    let empty = engine.analyze(&Artifact::File(Bytes::new())).await.verdict;
    assert!(
        matches!(empty, Verdict::Benign | Verdict::Unknown),
        "{empty:?}"
    );
    engine.teardown().await.unwrap();
}

#[tokio::test]
async fn setup_and_teardown_can_repeat() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = engine(&backend);
    let scanner = engine.scanner();
    scanner.setup().await.unwrap();
    scanner.setup().await.unwrap();
    scanner.teardown().await.unwrap();
    scanner.teardown().await.unwrap();
    scanner.setup().await.unwrap();
    // Still works after the sequence.
    let eicar = engine.analyze(&sample(MALICIOUS_SAMPLE)).await;
    assert_eq!(eicar.verdict, Verdict::Malicious);
    scanner.teardown().await.unwrap();
}
{%- if scans_urls %}

#[tokio::test]
async fn a_blocked_url_is_malicious_and_another_benign() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = engine(&backend);
    engine.scanner().setup().await.unwrap();
    let bad = Artifact::Url(microengine::runtime::artifact::EICAR_URL.to_owned());
    let good = Artifact::Url("https://www.example.com/index.html".to_owned());
    assert_eq!(engine.analyze(&bad).await.verdict, Verdict::Malicious);
    assert_eq!(engine.analyze(&good).await.verdict, Verdict::Benign);
}
{%- endif %}
