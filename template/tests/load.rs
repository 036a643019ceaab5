//! Load and faults: thousands of bounties through the built engine over real
//! HTTP on loopback, with faults injected while they run.
//!
//! Slow, so plain `cargo test` skips them; run them with
//!
//! ```sh
//! cargo test --test load -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Each prints its figures and checks what matters on the marketplace: every
//! accepted bounty gets exactly one verdict, no artifact that was not scanned
//! is called `benign`, and the engine recovers by itself.

mod support;

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use microengine::runtime::forge::bounty_webhook;
use microengine::runtime::ArtifactKind;

use support::{
    sample_bounty, ArtifactServer, Backend, EngineProcess, Receiver, CLEAN_SAMPLE,
    MALICIOUS_SAMPLE, SECRET,
};

/// An artifact the load sends, and what a correct scan calls it.
#[derive(Clone)]
struct Target {
    artifact: (ArtifactKind, String),
    malicious: bool,
    expires_in: Duration,
}

/// What happened to one bounty.
#[derive(Debug, Clone)]
struct Record {
    id: usize,
    /// Index into the targets.
    target: usize,
    sent_at: Instant,
    /// The webhook's HTTP status; `None` when the engine could not be reached.
    status: Option<u16>,
    /// The verdict and when it arrived.
    verdict: Option<(String, Instant)>,
}

impl Record {
    fn accepted(&self) -> bool {
        self.status == Some(202)
    }
}

/// Closed-loop load: each worker sends a bounty and waits for its verdict
/// before sending the next, so `concurrency` bounties are in flight.
struct Load {
    client: reqwest::Client,
    engine_url: String,
    receiver: Arc<Receiver>,
    targets: Vec<Target>,
    /// Set to stop the workers early.
    stop: AtomicBool,
}

impl Load {
    fn new(engine: &EngineProcess, receiver: &Arc<Receiver>, targets: Vec<Target>) -> Arc<Self> {
        Arc::new(Self {
            client: reqwest::Client::new(),
            engine_url: engine.url.clone(),
            receiver: Arc::clone(receiver),
            targets,
            stop: AtomicBool::new(false),
        })
    }

    /// Sends the bounties `ids` (target `id % targets`), `concurrency` at a
    /// time, until done, `until` or [`Load::stop`]; a worker also stops when
    /// the engine cannot be reached.
    async fn run(
        self: &Arc<Self>,
        ids: Range<usize>,
        concurrency: usize,
        until: Option<Instant>,
    ) -> Vec<Record> {
        let next = Arc::new(AtomicUsize::new(ids.start));
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let load = Arc::clone(self);
                let next = Arc::clone(&next);
                let end = ids.end;
                tokio::spawn(async move {
                    let mut records = Vec::new();
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let out_of_time = until.is_some_and(|until| Instant::now() >= until);
                        if id >= end || out_of_time || load.stop.load(Ordering::Relaxed) {
                            return records;
                        }
                        let record = load.one(id).await;
                        let unreachable = record.status.is_none();
                        records.push(record);
                        if unreachable {
                            return records;
                        }
                    }
                })
            })
            .collect();
        let mut records = Vec::new();
        for worker in workers {
            records.extend(worker.await.unwrap());
        }
        records.sort_by_key(|record| record.id);
        records
    }

    /// [`Load::run`] at concurrency 64 in a task of its own, while the test
    /// injects a fault; up to a million bounties, until `until` or
    /// [`Load::stop`].
    fn in_background(self: &Arc<Self>, until: Option<Instant>) -> JoinHandle<Vec<Record>> {
        let load = Arc::clone(self);
        tokio::spawn(async move { load.run(0..1_000_000, 64, until).await })
    }

    async fn one(&self, id: usize) -> Record {
        let target = id % self.targets.len();
        let Target {
            artifact,
            expires_in,
            ..
        } = &self.targets[target];
        let name = id.to_string();
        let verdict = self.receiver.expect(&name);
        let body = serde_json::to_vec(&sample_bounty(
            &name,
            artifact,
            &self.receiver.url(&name),
            *expires_in,
        ))
        .unwrap();
        let sent_at = Instant::now();
        let response = bounty_webhook(&self.client, &self.engine_url, Some(SECRET), body)
            .send()
            .await;
        let status = response.ok().map(|response| response.status().as_u16());
        let mut record = Record {
            id,
            target,
            sent_at,
            status,
            verdict: None,
        };
        if record.accepted() {
            // The engine answers before the bounty expires; allow slack.
            let wait = *expires_in + Duration::from_secs(30);
            if let Ok(Ok(verdict)) = tokio::time::timeout(wait, verdict).await {
                let verdict = verdict["verdict"].as_str().unwrap_or("?").to_owned();
                record.verdict = Some((verdict, Instant::now()));
            }
        }
        record
    }

    /// Checks the marketplace invariants over `records` and prints the
    /// figures. Panics on a violation.
    async fn check(&self, name: &str, records: &[Record], elapsed: Duration) -> Tally {
        // A second delivery of a verdict (a retry after a lost answer) would
        // come after the first: give it time to show up.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut deliveries: HashMap<String, usize> = HashMap::new();
        for (path, _) in self.receiver.verdicts() {
            *deliveries.entry(path).or_default() += 1;
        }
        let mut tally = Tally::default();
        for record in records {
            tally.sent += 1;
            if let Some((_, at)) = &record.verdict {
                tally.slowest = tally.slowest.max(at.duration_since(record.sent_at));
            }
            let delivered = deliveries
                .get(&format!("verdict/{}", record.id))
                .copied()
                .unwrap_or(0);
            assert!(
                delivered <= 1,
                "bounty {} answered {delivered} times",
                record.id
            );
            match record.status {
                Some(202) => {
                    tally.accepted += 1;
                    assert_eq!(delivered, 1, "accepted bounty {} got no verdict", record.id);
                }
                // Refused (503 when saturated, or shutting down): no verdict.
                Some(status) => {
                    tally.refused += 1;
                    assert_eq!(
                        delivered, 0,
                        "bounty {} got {status} and a verdict",
                        record.id
                    );
                }
                // The connection broke: the engine may or may not have taken it.
                None => tally.unreachable += 1,
            }
            if let Some((verdict, _)) = &record.verdict {
                let target = &self.targets[record.target];
                let correct = if target.malicious {
                    "malicious"
                } else {
                    "benign"
                };
                assert!(
                    verdict == correct || verdict == "unknown",
                    "bounty {}: {verdict}, expected {correct} or unknown",
                    record.id
                );
                *tally.verdicts.entry(verdict.clone()).or_default() += 1;
            }
        }
        println!(
            "load[{name}]: sent {}, accepted {}, refused {}, unreachable {}, answered {:?} in {:.1} s ({:.0} bounties/s, slowest answer {:.0} ms)",
            tally.sent,
            tally.accepted,
            tally.refused,
            tally.unreachable,
            tally.verdicts,
            elapsed.as_secs_f64(),
            tally.sent as f64 / elapsed.as_secs_f64(),
            tally.slowest.as_secs_f64() * 1000.0
        );
        tally
    }
}

#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    accepted: usize,
    refused: usize,
    unreachable: usize,
    verdicts: HashMap<String, usize>,
    /// The longest time from webhook sent to verdict received.
    slowest: Duration,
}

impl Tally {
    fn count(&self, verdict: &str) -> usize {
        self.verdicts.get(verdict).copied().unwrap_or(0)
    }
}

/// The artifact server, the verdict receiver and the usual two targets:
/// even ids malicious, odd ids clean.
async fn marketplace() -> (ArtifactServer, Arc<Receiver>, Vec<Target>) {
    let artifacts = ArtifactServer::start(Duration::ZERO).await;
    let receiver = Arc::new(Receiver::start(0).await);
    let targets = vec![
        Target {
            artifact: artifacts.publish_sample("malicious", MALICIOUS_SAMPLE),
            malicious: true,
            expires_in: Duration::from_secs(60),
        },
        Target {
            artifact: artifacts.publish_sample("clean", CLEAN_SAMPLE),
            malicious: false,
            expires_in: Duration::from_secs(60),
        },
    ];
    (artifacts, receiver, targets)
}

{%- if backend == "clamav" %}

/// When the first correct (not `unknown`) verdict arrived after `since`.
fn recovered_after(records: &[Record], since: Instant) -> Option<Duration> {
    records
        .iter()
        .filter(|record| record.sent_at >= since)
        .filter_map(|record| record.verdict.as_ref())
        .filter(|(verdict, _)| verdict != "unknown")
        .map(|(_, at)| at.duration_since(since))
        .min()
}
{%- endif %}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: cargo test --test load -- --ignored --nocapture"]
async fn ten_thousand_bounties_at_concurrency_64_get_one_verdict_each() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = EngineProcess::start(&backend, &[]).await;
    let (_artifacts, receiver, targets) = marketplace().await;
    let load = Load::new(&engine, &receiver, targets);

    let started = Instant::now();
    let mut records = load.run(0..1_000, 64, None).await;
    let warm_rss = engine.rss_mib();
    records.extend(load.run(1_000..10_000, 64, None).await);
    let end_rss = engine.rss_mib();
    let tally = load.check("10k", &records, started.elapsed()).await;
    println!(
        "load[10k]: RSS {warm_rss:.1} MiB after 1,000 bounties, {end_rss:.1} MiB after 10,000"
    );

    assert_eq!(tally.accepted, 10_000);
    // Nothing failed, so nothing may be unknown.
    assert_eq!(tally.count("malicious"), 5_000);
    assert_eq!(tally.count("benign"), 5_000);
    // Bookkeeping of answered bounties does not pile up: 9,000 more
    // bounties may not cost 4 MiB (450 bytes each).
    assert!(
        end_rss <= warm_rss + 4.0,
        "RSS grew from {warm_rss:.1} MiB to {end_rss:.1} MiB"
    );
}
{%- if backend == "clamav" %}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: cargo test --test load -- --ignored --nocapture"]
async fn clamd_killed_and_restarted_during_load() {
    let Some(mut backend) = Backend::start() else {
        return;
    };
    let engine = EngineProcess::start(&backend, &[]).await;
    let (_artifacts, receiver, targets) = marketplace().await;
    let load = Load::new(&engine, &receiver, targets);

    let started = Instant::now();
    let running = load.in_background(Some(started + Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    backend.kill();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_at = Instant::now();
    let backend = tokio::task::spawn_blocking(move || {
        backend.restart();
        backend
    })
    .await
    .unwrap();
    let up_at = Instant::now();
    let records = running.await.unwrap();
    let tally = load
        .check("clamd killed", &records, started.elapsed())
        .await;

    // While clamd was down, nothing was called benign (or malicious).
    let while_down: Vec<&Record> = records
        .iter()
        .filter(|record| record.sent_at >= down_at)
        .filter(|record| {
            record
                .verdict
                .as_ref()
                .is_some_and(|(_, at)| *at < restart_at)
        })
        .collect();
    assert!(
        !while_down.is_empty(),
        "no bounty was answered while clamd was down"
    );
    for record in &while_down {
        assert_eq!(record.verdict.as_ref().unwrap().0, "unknown", "{record:?}");
    }
    let recovery = recovered_after(&records, up_at).expect("the engine never recovered");
    println!(
        "load[clamd killed]: {} answered unknown while clamd was down; clamd back after {:.1} s; first real verdict {:.0} ms after clamd was back",
        while_down.len(),
        (up_at - down_at).as_secs_f64(),
        recovery.as_secs_f64() * 1000.0
    );
    assert_eq!(tally.refused + tally.unreachable, 0);
    drop(backend);
}
{%- endif %}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: cargo test --test load -- --ignored --nocapture"]
async fn the_receiver_down_for_five_seconds_loses_no_verdict() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = EngineProcess::start(&backend, &[]).await;
    let (_artifacts, receiver, targets) = marketplace().await;
    let load = Load::new(&engine, &receiver, targets);

    let started = Instant::now();
    let running = load.in_background(Some(started + Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    receiver.go_down(Duration::from_secs(5)).await;
    let back_at = Instant::now();
    let records = running.await.unwrap();
    let tally = load
        .check("receiver down 5 s", &records, started.elapsed())
        .await;

    // Verdicts held back by the outage were delivered once it was over.
    let first_after = records
        .iter()
        .filter_map(|record| record.verdict.as_ref())
        .map(|(_, at)| *at)
        .filter(|at| *at >= back_at)
        .min()
        .expect("no verdict after the receiver came back");
    println!(
        "load[receiver down 5 s]: first verdict {:.0} ms after the receiver came back",
        first_after.duration_since(back_at).as_secs_f64() * 1000.0
    );
    assert_eq!(tally.accepted, tally.sent);
    assert_eq!(tally.count("unknown"), 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: cargo test --test load -- --ignored --nocapture"]
async fn slow_artifacts_delay_or_time_out_only_their_own_bounties() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let engine = EngineProcess::start(&backend, &[]).await;
    let (_artifacts, receiver, mut targets) = marketplace().await;
    let slow = ArtifactServer::start(Duration::from_millis(1_500)).await;
    // Slow but in time: scanned late, answered correctly.
    targets.push(Target {
        artifact: slow.publish_sample("clean", CLEAN_SAMPLE),
        malicious: false,
        expires_in: Duration::from_secs(60),
    });
    // Slower than the bounty's deadline (expiration minus the 5 s margin):
    // abandoned, and never benign.
    targets.push(Target {
        artifact: slow.publish_sample("clean-late", CLEAN_SAMPLE),
        malicious: false,
        expires_in: Duration::from_millis(5_500),
    });
    // Fast ones dominate: 2 slow in 20. A slow download holds one of the
    // engine's workers while it trickles in, which bounds this run's pace.
    let fast = targets[..2].to_vec();
    let mut mix = Vec::new();
    for i in 0..20 {
        mix.push(match i {
            5 => targets[2].clone(),
            15 => targets[3].clone(),
            _ => fast[i % 2].clone(),
        });
    }
    let load = Load::new(&engine, &receiver, mix);

    let started = Instant::now();
    let records = load.run(0..600, 64, None).await;
    let tally = load
        .check("slow artifacts", &records, started.elapsed())
        .await;

    let of = |slot: usize| records.iter().filter(move |record| record.target == slot);
    for record in of(5) {
        assert_eq!(record.verdict.as_ref().unwrap().0, "benign", "{record:?}");
    }
    for record in of(15) {
        assert_eq!(record.verdict.as_ref().unwrap().0, "unknown", "{record:?}");
    }
    println!(
        "load[slow artifacts]: {} slow in time answered benign, {} past their deadline answered unknown",
        of(5).count(),
        of(15).count()
    );
    assert_eq!(tally.accepted, tally.sent);
    assert_eq!(tally.count("unknown"), of(15).count());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load test: cargo test --test load -- --ignored --nocapture"]
async fn sigterm_during_load_answers_every_accepted_bounty() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let mut engine = EngineProcess::start(&backend, &[]).await;
    let (_artifacts, receiver, targets) = marketplace().await;
    let load = Load::new(&engine, &receiver, targets);

    let started = Instant::now();
    let running = load.in_background(None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    engine.terminate();
    let status = engine.wait().await;
    let exited = started.elapsed();
    // Whatever the engine took, it answered before it exited.
    let answered_at_exit = receiver.verdicts().len();
    load.stop.store(true, Ordering::Relaxed);
    let records = running.await.unwrap();
    let tally = load.check("SIGTERM", &records, exited).await;
    println!(
        "load[SIGTERM]: engine exited {:.1} s after start with {answered_at_exit} verdicts delivered",
        exited.as_secs_f64()
    );
    assert!(status.success(), "{status:?}");
    assert!(tally.accepted > 0);
    // Every bounty that got 202 was answered before the exit. A request cut
    // off by the shutdown may have been taken without its 202 arriving.
    assert!(
        (tally.accepted..=tally.accepted + tally.unreachable).contains(&answered_at_exit),
        "{answered_at_exit} verdicts at exit for {} accepted bounties",
        tally.accepted
    );
    assert_eq!(answered_at_exit, receiver.verdicts().len());
    assert_eq!(tally.count("unknown"), 0);
}
