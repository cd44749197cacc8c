//! Kafka clusters for the fault tests: a client-side handle on any cluster (its bootstrap
//! address and client properties, e.g. SASL), and a test's own cluster started with
//! `scripts/kafka.sh` (path from `KWS_KAFKA_SCRIPT`), whose nodes the test can stop, kill and
//! restart. The cluster is stopped when its handle drops, on every exit path (panics too).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{unique, wait_until};

/// Client access to one Kafka cluster.
#[derive(Clone, Debug)]
pub struct Kafka {
    pub bootstrap: String,
    /// librdkafka properties every client of this cluster needs (security settings).
    pub properties: Vec<(String, String)>,
}

impl Kafka {
    /// The shared 1-node cluster of the test run (`KWS_KAFKA_BOOTSTRAP`).
    pub fn shared() -> Kafka {
        Kafka {
            bootstrap: super::bootstrap(),
            properties: Vec::new(),
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// Creates a topic and waits until its metadata shows every partition.
    pub async fn create_topic(&self, name: &str, partitions: i32, replication: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        let results = admin
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
            )
            .await
            .expect("create_topics request");
        for result in results {
            result.unwrap_or_else(|(topic, error)| panic!("creating topic {topic}: {error}"));
        }
        let consumer: BaseConsumer = self.client_config().create().expect("metadata client");
        wait_until(
            Duration::from_secs(60),
            format!("topic {name} has {partitions} partitions with leaders"),
            || {
                consumer
                    .fetch_metadata(Some(name), Duration::from_secs(5))
                    .ok()
                    .and_then(|metadata| {
                        metadata.topics().first().map(|topic| {
                            topic.partitions().len() as i32 == partitions
                                && topic.partitions().iter().all(|p| p.leader() >= 0)
                        })
                    })
                    == Some(true)
            },
        )
        .await;
    }

    /// An idempotent producer (acks=all): keeps per-partition order across broker restarts,
    /// and buffers (up to `message.timeout.ms`, 5 min) while no broker is reachable.
    pub fn producer(&self) -> FutureProducer {
        self.producer_config().create().expect("producer")
    }

    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        config
    }

    /// The group's committed offset per partition (-1 where nothing is committed); `None` if
    /// the cluster did not answer. Never joins the group.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Option<Vec<i64>> {
        let reader = self.offset_reader(group);
        committed_with(&reader, topic, partitions, Duration::from_secs(10))
    }

    /// A client with the group id that never subscribes, for reading committed offsets.
    pub fn offset_reader(&self, group: &str) -> BaseConsumer {
        self.client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("offset reader")
    }

    /// The end (high watermark) of every partition.
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = self.client_config().create().expect("watermark reader");
        (0..partitions)
            .map(|partition| {
                consumer
                    .fetch_watermarks(topic, partition, Duration::from_secs(20))
                    .expect("watermarks")
                    .1
            })
            .collect()
    }
}

/// Committed offsets read with an existing offset reader; `None` on any error.
pub fn committed_with(
    reader: &BaseConsumer,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Option<Vec<i64>> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = reader.committed_offsets(list, timeout).ok()?;
    let mut offsets = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        let element = committed.find_partition(topic, partition)?;
        if element.error().is_err() {
            return None;
        }
        offsets.push(match element.offset() {
            Offset::Offset(offset) => offset,
            _ => -1,
        });
    }
    Some(offsets)
}

/// A test's own cluster, run by `scripts/kafka.sh` in a fresh directory.
pub struct Cluster {
    pub dir: PathBuf,
    pub bootstrap: String,
    pub nodes: usize,
    script: PathBuf,
}

impl Cluster {
    /// Starts `nodes` (1 or 3) fresh nodes; `extra` are more `kafka.sh start` options.
    /// Blocks (run it under `block_in_place` or before the runtime is busy).
    pub fn start(nodes: usize, extra: &[&str]) -> Cluster {
        let script = PathBuf::from(std::env::var("KWS_KAFKA_SCRIPT").unwrap_or_else(|_| {
            panic!(
                "KWS_KAFKA_SCRIPT is not set: run ./scripts/test.sh, or export \
                 KWS_KAFKA_SCRIPT=$PWD/scripts/kafka.sh (this test starts its own cluster)"
            )
        }));
        let dir = std::env::temp_dir().join(unique("kws-fault-kafka"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let mut cluster = Cluster {
            dir,
            bootstrap: String::new(),
            nodes,
            script,
        };
        let nodes_arg = nodes.to_string();
        let mut args = vec!["start", "--brokers", nodes_arg.as_str()];
        args.extend_from_slice(extra);
        // KWS_KAFKA_START_TIMEOUT: generous on a loaded 2-core machine.
        cluster.run_with_env(&args, &[("KWS_KAFKA_START_TIMEOUT", "240")]);
        cluster.bootstrap = std::fs::read_to_string(cluster.dir.join("bootstrap"))
            .expect("bootstrap file")
            .trim()
            .to_string();
        eprintln!(
            "started {nodes}-node cluster at {} in {}",
            cluster.bootstrap,
            cluster.dir.display()
        );
        cluster
    }

    pub fn kafka(&self) -> Kafka {
        Kafka {
            bootstrap: self.bootstrap.clone(),
            properties: Vec::new(),
        }
    }

    fn run(&self, args: &[&str]) {
        self.run_with_env(args, &[("KWS_KAFKA_START_TIMEOUT", "240")])
    }

    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) {
        let mut command = Command::new("bash");
        command
            .arg(&self.script)
            .args(args)
            .arg("--dir")
            .arg(&self.dir);
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("run kafka.sh");
        if !output.status.success() {
            panic!(
                "kafka.sh {args:?} failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Stops node `i` (1-based) gracefully (SIGTERM, controlled shutdown).
    pub fn stop_node(&self, i: usize) {
        self.run(&["stop-node", &i.to_string()]);
    }

    /// Restarts node `i` with its data, on the same ports; returns when it answers metadata.
    pub fn start_node(&self, i: usize) {
        self.run(&["start-node", &i.to_string()]);
    }

    /// SIGKILLs node `i` and waits until the process is gone.
    pub async fn kill_node(&self, i: usize) {
        let pid_file = self.dir.join(format!("node-{i}")).join("pid");
        let pid = std::fs::read_to_string(&pid_file)
            .expect("node pid file")
            .trim()
            .to_string();
        let status = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -KILL {pid} failed");
        wait_until(
            Duration::from_secs(30),
            format!("node {i} (pid {pid}) is gone"),
            || {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|stat| stat.split_whitespace().nth(2) == Some("Z"))
                    .unwrap_or(true)
            },
        )
        .await;
    }

    /// The tail of every node's log.
    pub fn logs(&self) -> String {
        Command::new("bash")
            .arg(&self.script)
            .args(["logs", "--dir"])
            .arg(&self.dir)
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!(
                "---- Kafka logs of {} ----\n{}",
                self.dir.display(),
                self.logs()
            );
        }
        let stopped = Command::new("bash")
            .arg(&self.script)
            .args(["stop", "--dir"])
            .arg(&self.dir)
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        if stopped && !panicking {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Kafka data and logs kept in {}", self.dir.display());
        }
    }
}

/// Holds the fault suite's tests one at a time (each runs clusters, processes and timed
/// faults; two at once on a small machine would measure each other). Hold the guard for the
/// whole test; a failed test does not block the next one.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// True when `KWS_TEST_SKIP_SLOW=1`: the three-broker and long-outage tests return at once
/// (for quick local runs; `./scripts/test.sh` runs everything unless it is set).
pub fn skip_slow(test: &str) -> bool {
    let skip = std::env::var("KWS_TEST_SKIP_SLOW").is_ok_and(|value| value == "1");
    if skip {
        eprintln!("{test}: skipped (KWS_TEST_SKIP_SLOW=1)");
    }
    skip
}
