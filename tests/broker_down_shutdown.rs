//! SIGTERM while the broker is unreachable: the sidecar still exits by
//! `termination_grace_period − 1 s` (README, "Scaling and failover"), with the exit code of a
//! shutdown cut short, and when the broker returns, the group's committed offset is not past a
//! record that was never acknowledged.
//!
//! The test runs its own 1-node cluster (`$KWS_KAFKA_SCRIPT start --dir <tmp>`), because it
//! stops and restarts the broker; the cluster is stopped by a guard on every exit path.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::endpoint::{Endpoint, Reply};
use common::*;
use kafka_webhook_sidecar::config::Ordering as DeliveryOrdering;

const LONG: Duration = Duration::from_secs(120);
/// `shutdown.drain_timeout` of the sidecar.
const DRAIN: Duration = Duration::from_secs(2);
/// `shutdown.termination_grace_period`: the README promises an exit by `GRACE − 1 s`.
const GRACE: Duration = Duration::from_secs(8);
/// Allowance past `GRACE − 1 s` for the test's own measurement: spawning `kill`, the signal
/// reaching the process, process teardown, and the 50 ms poll of `wait_exit`.
const TEARDOWN_SLACK: Duration = Duration::from_millis(500);
/// The exit code of a shutdown cut short by the hard deadline (`EXIT_FORCED` in `src/lib.rs`;
/// a clean shutdown exits 0, a bad config 64). The README documents 0 and 64 but not this one.
const EXIT_CUT_SHORT: i32 = 1;

/// A private Kafka cluster started by `scripts/kafka.sh`; stopped when dropped (also when the
/// test panics).
struct Cluster {
    script: PathBuf,
    dir: PathBuf,
    bootstrap: String,
}

impl Cluster {
    async fn start() -> Cluster {
        let script = std::env::var_os("KWS_KAFKA_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"));
        let dir = std::env::temp_dir().join(unique("kws-broker-down"));
        // The guard exists before the start, so a half-started cluster is stopped too.
        let mut cluster = Cluster {
            script,
            dir,
            bootstrap: String::new(),
        };
        cluster.run(&["start"]).await;
        cluster.bootstrap = std::fs::read_to_string(cluster.dir.join("bootstrap"))
            .expect("the cluster directory holds the bootstrap address")
            .trim()
            .to_string();
        cluster
    }

    /// Runs `kafka.sh <args> --dir <dir>` (the script waits for what it does, with its own
    /// deadlines) and panics with its output if it fails.
    async fn run(&self, args: &[&str]) {
        let mut command = Command::new(&self.script);
        command.args(args).arg("--dir").arg(&self.dir);
        let described = format!("kafka.sh {} --dir {}", args.join(" "), self.dir.display());
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("kafka.sh task")
            .unwrap_or_else(|error| panic!("{described}: {error}"));
        assert!(
            output.status.success(),
            "{described} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("{described}: done in {:?}", started.elapsed());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg("--dir")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_while_the_broker_is_down_exits_in_time_and_commits_nothing_unacknowledged() {
    const KEYS: usize = 4;
    const RECORDS: usize = 20;
    let cluster = Cluster::start().await;
    let topic = unique("broker-down");
    let group = unique("broker-down-group");
    create_topic_at(&cluster.bootstrap, &topic, 1, &[]).await;
    // One partition, keys k0..k3 round-robin: offset = 4 × seq + key number.
    produce_keyed_from(&producer_at(&cluster.bootstrap), &topic, KEYS, RECORDS, 0).await;

    // k1's record with seq 2 (offset 9) is never acknowledged (503 forever; on_failure:
    // block). In key mode only k1's later records wait behind it: the other keys' records
    // above it are acknowledged, so the committed offset must hold at the gap. k0's record
    // with seq 1 (offset 4) is held back the same way until the broker is down, so that
    // acknowledgements arrive during the outage and the final commit has work to do.
    let unacked: i64 = 4 * 2 + 1;
    let gated: i64 = 4;
    let is_unacked: fn(&Keyed) -> bool = |keyed| keyed.key == "k1" && keyed.seq == 2;
    let is_gated: fn(&Keyed) -> bool = |keyed| keyed.key == "k0" && keyed.seq == 1;
    let gate_open = Arc::new(AtomicBool::new(false));
    let endpoint = Endpoint::start().await;
    let open = gate_open.clone();
    endpoint.set_handler(move |request, _| match parse_payload(&request.body) {
        Some(keyed) if is_unacked(&keyed) => Reply::status(503),
        Some(keyed) if is_gated(&keyed) && !open.load(Ordering::SeqCst) => Reply::status(503),
        _ => Reply::ok(),
    });
    let mut config = test_config_at(&cluster.bootstrap, &group, &topic, &endpoint.url());
    config.delivery.ordering = DeliveryOrdering::Key;
    config.delivery.max_in_flight = 4;
    config.shutdown.drain_timeout = DRAIN;
    config.shutdown.termination_grace_period = GRACE;
    // A session longer than the grace period, as in production (the default is 45 s). With the
    // test default of 6 s, librdkafka gives up waiting for the coordinator when the session
    // expires, which would end the shutdown's commit and close early by luck.
    config.kafka.session_timeout = Duration::from_secs(30);
    let mut sidecar = Sidecar::start_ready(&config).await;

    // Everything but k0 from seq 1 and k1 from seq 2 (they wait behind their key's head).
    let records: Vec<Keyed> = (0..RECORDS)
        .map(|index| Keyed {
            key: format!("k{}", index % KEYS),
            seq: (index / KEYS) as u64,
        })
        .collect();
    let from = |keyed: &Keyed, key: &str, seq: u64| keyed.key == key && keyed.seq >= seq;
    let before_outage = records
        .iter()
        .filter(|k| !(from(k, "k0", 1) || from(k, "k1", 2)))
        .count();
    endpoint.wait_for_distinct_ids(before_outage, LONG).await;
    let id = |offset: i64| format!("{topic}-0-{offset}");
    wait_until(LONG, "the held records are being retried", || {
        endpoint.requests_for_id(&id(unacked)).len() >= 3
            && endpoint.requests_for_id(&id(gated)).len() >= 3
    })
    .await;
    for (offset, what) in [(unacked, is_unacked), (gated, is_gated)] {
        let requests = endpoint.requests_for_id(&id(offset));
        assert!(
            requests
                .iter()
                .all(|r| !r.is_success() && parse_payload(&r.body).is_some_and(|k| what(&k))),
            "offset {offset} is the held record and was never acknowledged"
        );
    }
    assert!(
        endpoint
            .distinct_successful_ids()
            .contains(&id(RECORDS as i64 - 1)),
        "records above the held ones were acknowledged"
    );
    wait_until(
        LONG,
        format!("the group's committed offset reaches the held offset {gated}"),
        || committed_offsets_at(&cluster.bootstrap, &group, &topic, 1).ok() == Some(vec![gated]),
    )
    .await;

    // The broker goes away (data kept). The gated record and k0's records behind it are
    // acknowledged during the outage: offsets 0..9 are now all acknowledged, 9 is not.
    cluster.run(&["stop-node", "1"]).await;
    gate_open.store(true, Ordering::SeqCst);
    let after_outage = records.iter().filter(|k| !from(k, "k1", 2)).count();
    endpoint.wait_for_distinct_ids(after_outage, LONG).await;

    // Then the sidecar is told to stop.
    let signalled = Instant::now();
    sidecar.sigterm();
    let status = sidecar.wait_exit(LONG).await;
    let took = signalled.elapsed();
    eprintln!(
        "broker down: exited with {status} {took:?} after SIGTERM (drain_timeout {DRAIN:?}, \
         termination_grace_period {GRACE:?})"
    );

    // The broker returns with the same data (before the assertions, so that a failing run
    // still reports the committed offset): the commit never passed the unacknowledged record.
    cluster.run(&["start-node", "1"]).await;
    let committed = wait_until(
        LONG,
        "the restarted broker answers the group's committed offsets",
        || committed_offsets_at(&cluster.bootstrap, &group, &topic, 1).ok(),
    )
    .await;
    eprintln!(
        "broker back: committed {committed:?}, unacknowledged offset {unacked} (committed \
         before the outage: {gated})"
    );
    let hard_deadline = GRACE - Duration::from_secs(1);
    assert!(
        took <= hard_deadline + TEARDOWN_SLACK,
        "exit took {took:?} after SIGTERM with the broker down, past termination_grace_period \
         − 1 s = {hard_deadline:?} (+ {TEARDOWN_SLACK:?} slack); log:\n{}",
        sidecar.logs()
    );
    assert_eq!(
        status.code(),
        Some(EXIT_CUT_SHORT),
        "exit code of a shutdown cut short by the broker outage; log:\n{}",
        sidecar.logs()
    );
    assert!(
        committed[0] <= unacked,
        "committed offset {} is past the unacknowledged offset {unacked}",
        committed[0]
    );
}
