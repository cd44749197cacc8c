//! Helpers shared by the integration tests: the Kafka bootstrap address, unique names, topic
//! creation, a keyed producer with per-key sequence numbers, committed/end offsets, waiting on
//! conditions with a deadline, and a handle on a sidecar process.
#![allow(dead_code)]

pub mod checks;
pub mod cluster;
pub mod endpoint;
pub mod pki;
pub mod proxy;
pub mod rss;

use std::collections::HashMap;
use std::fmt::Display;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_webhook_sidecar::config::{Config, LogFormat};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// The Kafka cluster under test, from `KWS_KAFKA_BOOTSTRAP`.
pub fn bootstrap() -> String {
    match std::env::var("KWS_KAFKA_BOOTSTRAP") {
        Ok(address) if !address.trim().is_empty() => address,
        _ => panic!(
            "KWS_KAFKA_BOOTSTRAP is not set. Integration tests need a real Kafka broker: run \
             ./scripts/test.sh (starts one), or start one with `scripts/kafka.sh start` and export \
             KWS_KAFKA_BOOTSTRAP=<host:port> (it may point at your own cluster)."
        ),
    }
}

/// A name unique to this test run and call.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn client_config() -> ClientConfig {
    client_config_at(&bootstrap())
}

/// A client config for the cluster at `bootstrap` (a test's private cluster).
pub fn client_config_at(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Creates a topic and waits until its metadata shows every partition.
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_with(name, partitions, &[]).await
}

pub async fn create_topic_with(name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_at(&bootstrap(), name, partitions, configs).await
}

pub async fn create_topic_at(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> =
        client_config_at(bootstrap).create().expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics request");
    for result in results {
        result.unwrap_or_else(|(topic, error)| panic!("creating topic {topic}: {error}"));
    }
    let consumer: BaseConsumer = client_config_at(bootstrap)
        .create()
        .expect("metadata client");
    wait_until(
        Duration::from_secs(30),
        &format!("topic {name} has {partitions} partitions"),
        || {
            consumer
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .and_then(|metadata| {
                    metadata
                        .topics()
                        .first()
                        .map(|topic| topic.partitions().len() as i32)
                })
                == Some(partitions)
        },
    )
    .await;
}

pub fn producer() -> FutureProducer {
    producer_at(&bootstrap())
}

pub fn producer_at(bootstrap: &str) -> FutureProducer {
    client_config_at(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "4194304")
        .create()
        .expect("producer")
}

/// One produced test record: its key and its sequence number within the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Keyed {
    pub key: String,
    pub seq: u64,
}

/// A record read back from a dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Keyed>,
    /// Header values as (lossy) text.
    pub headers: std::collections::BTreeMap<String, String>,
}

impl DeadLetter {
    /// Asserts the headers that say where the record came from and why it was rejected:
    /// `topic`/`partition`/`offset`, the endpoint's `status` after `attempts` attempts, and an
    /// error message naming the status.
    pub fn assert_rejected(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        status: u16,
        attempts: u32,
    ) {
        let header = |name: &str| self.headers.get(name).map(String::as_str);
        let expected = [
            ("kws-original-topic", topic.to_string()),
            ("kws-original-partition", partition.to_string()),
            ("kws-original-offset", offset.to_string()),
            ("kws-error-status", status.to_string()),
            ("kws-error-attempts", attempts.to_string()),
        ];
        for (name, value) in expected {
            assert_eq!(
                header(name),
                Some(value.as_str()),
                "{name} of offset {offset}"
            );
        }
        assert!(
            header("kws-error-message")
                .is_some_and(|message| message.contains(&status.to_string())),
            "kws-error-message of offset {offset}: {:?}",
            header("kws-error-message")
        );
    }
}

/// Reads `count` records from the dead-letter topic `topic` (from its start, as a new group);
/// panics if they do not all arrive within 30 s.
pub async fn read_dead_letters(topic: &str, count: usize) -> Vec<DeadLetter> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let reader: BaseConsumer = client_config()
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("dead-letter reader");
    reader.subscribe(&[topic]).expect("subscribe");
    let mut read = Vec::new();
    wait_until(
        Duration::from_secs(30),
        lazy(|| format!("{count} records arrive in the dead-letter topic {topic}")),
        || {
            while let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| {
                                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                                (h.key.to_string(), value.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                read.push(DeadLetter {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().and_then(parse_payload),
                    headers,
                });
            }
            read.len() >= count
        },
    )
    .await;
    read
}

/// The JSON payload of a keyed test record.
pub fn payload(key: &str, seq: u64) -> String {
    format!(r#"{{"key":"{key}","seq":{seq}}}"#)
}

/// [`payload`] with a `pad` field of `pad` bytes (records of a chosen size).
pub fn padded_payload(key: &str, seq: u64, pad: usize) -> String {
    if pad == 0 {
        return payload(key, seq);
    }
    format!(
        r#"{{"key":"{key}","seq":{seq},"pad":"{}"}}"#,
        "x".repeat(pad)
    )
}

/// Parses a payload written by [`payload`].
pub fn parse_payload(body: &[u8]) -> Option<Keyed> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(Keyed {
        key: value.get("key")?.as_str()?.to_string(),
        seq: value.get("seq")?.as_u64()?,
    })
}

/// Produces `count` records round-robin over `keys` keys (`k0`, `k1`, …), each payload
/// carrying its key and per-key sequence number (starting at `first_seq`). Waits for every
/// acknowledgement. Returns the records in produce order.
pub async fn produce_keyed(topic: &str, keys: usize, count: usize) -> Vec<Keyed> {
    produce_keyed_from(&producer(), topic, keys, count, 0).await
}

pub async fn produce_keyed_from(
    producer: &FutureProducer,
    topic: &str,
    keys: usize,
    count: usize,
    first_seq: u64,
) -> Vec<Keyed> {
    produce_padded_from(producer, topic, keys, count, first_seq, 0).await
}

/// [`produce_keyed_from`] with each payload padded by `pad` bytes ([`padded_payload`]).
pub async fn produce_padded_from(
    producer: &FutureProducer,
    topic: &str,
    keys: usize,
    count: usize,
    first_seq: u64,
    pad: usize,
) -> Vec<Keyed> {
    let mut produced = Vec::with_capacity(count);
    let mut pending = Vec::with_capacity(count.min(2000));
    for index in 0..count {
        let key = format!("k{}", index % keys);
        let seq = first_seq + (index / keys) as u64;
        let body = padded_payload(&key, seq, pad);
        // Enqueued in order on this task, so the partition's offsets follow the sequence.
        let delivery = wait_until(
            Duration::from_secs(60),
            "the producer's queue has room",
            || match producer.send_result(FutureRecord::to(topic).key(&key).payload(&body)) {
                Ok(delivery) => Some(delivery),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => None,
                Err((error, _)) => panic!("produce: {error}"),
            },
        )
        .await;
        pending.push(delivery);
        produced.push(Keyed { key, seq });
        if pending.len() >= 2000 {
            for delivery in pending.drain(..) {
                delivery
                    .await
                    .expect("delivery")
                    .map_err(|(error, _)| error)
                    .expect("produce");
            }
        }
    }
    for delivery in pending {
        delivery
            .await
            .expect("delivery")
            .map_err(|(error, _)| error)
            .expect("produce");
    }
    produced
}

/// Produces one record with full control over key, value and headers.
pub async fn produce_raw(
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: *value,
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer()
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .expect("produce");
}

/// The group's committed offset per partition (-1 where nothing is committed). Uses a client
/// with the group id that never subscribes, so it does not join or disturb the group.
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    committed_offsets_at(&bootstrap(), group, topic, partitions).expect("committed offsets")
}

/// [`committed_offsets`] of the cluster at `bootstrap`; `Err` if it does not answer in 10 s.
pub fn committed_offsets_at(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i64>, rdkafka::error::KafkaError> {
    let consumer: BaseConsumer = client_config_at(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok((0..partitions)
        .map(|partition| {
            match committed
                .find_partition(topic, partition)
                .map(|element| element.offset())
            {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            }
        })
        .collect())
}

/// The end (high watermark) of every partition.
pub fn end_offsets(topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = client_config().create().expect("watermark reader");
    (0..partitions)
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// What a condition polled by [`wait_until`] yields: a `bool` (holds or not) or an `Option`
/// (`Some(value)` once it holds, and `wait_until` returns the value).
pub trait Outcome {
    type Value;
    fn into_value(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn into_value(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_value(self) -> Option<T> {
        self
    }
}

/// How often [`wait_until`] polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The one way tests wait: polls `condition` every 50 ms until it holds (`true`, or `Some`
/// whose value is returned); panics naming `what` after `timeout`. `what` is formatted only on
/// timeout, so it can describe the state at that moment (see [`lazy`]).
pub async fn wait_until<O: Outcome>(
    timeout: Duration,
    what: impl Display,
    mut condition: impl FnMut() -> O,
) -> O::Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().into_value() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A description computed only when it is displayed (e.g. a [`wait_until`] that timed out).
pub struct Lazy<F>(F);

pub fn lazy<F: Fn() -> String>(describe: F) -> Lazy<F> {
    Lazy(describe)
}

impl<F: Fn() -> String> Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

/// The config of one test sidecar, built from the config types (serialized to YAML by
/// [`Sidecar::start`]): short session and commit interval, fast retries, text logs. The admin
/// port is chosen when the sidecar starts. Adjust fields before starting it.
pub fn test_config(group: &str, topic: &str, url: &str) -> Config {
    test_config_at(&bootstrap(), group, topic, url)
}

/// [`test_config`] for the cluster at `bootstrap` (a test's private cluster).
pub fn test_config_at(bootstrap: &str, group: &str, topic: &str, url: &str) -> Config {
    let mut config = Config::new(bootstrap, group, &[topic], url);
    config.kafka.session_timeout = Duration::from_secs(6);
    config.kafka.commit_interval = Duration::from_millis(200);
    config.kafka.rebalance_drain_timeout = Duration::from_secs(5);
    config.delivery.timeout = Duration::from_secs(5);
    config.delivery.retry.initial_backoff = Duration::from_millis(20);
    config.delivery.retry.max_backoff = Duration::from_millis(500);
    config.admin.listen = "127.0.0.1:0".into();
    config.log.format = LogFormat::Text;
    config.log.level = "info".into();
    config
}

/// The value of one exactly named series (`name{labels}` as rendered) in a metrics text.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == name).then(|| value.trim().parse().ok())?
        })
}

/// GETs a path of the admin server on `port`; `None` if it does not answer.
/// GETs an admin path on 127.0.0.1:`port`; `None` while the server does not answer.
pub fn admin_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A sidecar process started from the built binary.
pub struct Sidecar {
    pub child: Child,
    pub admin_port: u16,
    pub log_path: PathBuf,
    pub config_path: PathBuf,
}

impl Sidecar {
    /// Starts the binary with `config` (written as YAML), its admin server on a free port.
    pub fn start(config: &Config) -> Sidecar {
        Self::start_with_env(config, &[])
    }

    /// Starts the binary with `config` and waits until it joined the group (`/readyz`).
    pub async fn start_ready(config: &Config) -> Sidecar {
        let mut sidecar = Self::start(config);
        sidecar.wait_ready(Duration::from_secs(120)).await;
        sidecar
    }

    /// Starts the binary with `config` and extra environment variables (for `${VAR}`).
    pub fn start_with_env(config: &Config, env: &[(&str, &str)]) -> Sidecar {
        let admin_port = free_port();
        let mut config = config.clone();
        config.admin.listen = format!("127.0.0.1:{admin_port}");
        let name = unique("sidecar");
        let dir = std::env::temp_dir().join("kws-tests");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join(format!("{name}.yaml"));
        let log_path = dir.join(format!("{name}.log"));
        std::fs::write(&config_path, config.to_yaml()).expect("write config");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-webhook-sidecar"));
        command
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start sidecar");
        Sidecar {
            child,
            admin_port,
            log_path,
            config_path,
        }
    }

    /// GETs an admin path; `None` if the server does not answer.
    pub fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        admin_get(self.admin_port, path)
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.admin_get("/readyz"), Some((200, _)))
    }

    /// Waits until the sidecar joined the group (`/readyz`); panics if it exits first.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let admin_port = self.admin_port;
        let log_path = self.log_path.clone();
        let child = &mut self.child;
        wait_until(timeout, "the sidecar is ready", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sidecar exited early with {status}; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            matches!(admin_get(admin_port, "/readyz"), Some((200, _)))
        })
        .await
    }

    /// The metrics text.
    pub fn metrics(&self) -> String {
        self.admin_get("/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The value of one exactly named series, e.g.
    /// `kws_deliveries_total{outcome="success",topic="t"}` (labels in the order Prometheus
    /// renders them: alphabetical).
    pub fn metric(&self, name: &str) -> Option<f64> {
        series(&self.metrics(), name)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_until(timeout, "the sidecar exits", || {
            child.try_wait().expect("try_wait")
        })
        .await
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- sidecar log {} ----\n{}",
                self.log_path.display(),
                self.logs()
            );
        }
    }
}

/// Groups successful deliveries by their `kafka-partition` header, in arrival order, as
/// (offset, payload) pairs.
pub fn deliveries_by_partition(
    requests: &[endpoint::RecordedRequest],
) -> HashMap<i32, Vec<(i64, Option<Keyed>)>> {
    let mut by_partition: HashMap<i32, Vec<(i64, Option<Keyed>)>> = HashMap::new();
    for request in requests {
        let partition: i32 = request
            .header("kafka-partition")
            .and_then(|p| p.parse().ok())
            .expect("kafka-partition header");
        let offset: i64 = request
            .header("kafka-offset")
            .and_then(|o| o.parse().ok())
            .expect("kafka-offset header");
        by_partition
            .entry(partition)
            .or_default()
            .push((offset, parse_payload(&request.body)));
    }
    by_partition
}

/// Asserts each key's first deliveries arrive in sequence order (duplicates after a crash
/// are allowed; a record's first delivery must not overtake an earlier one of its key).
pub fn assert_per_key_order(requests: &[endpoint::RecordedRequest]) {
    let mut seen: HashMap<String, u64> = HashMap::new();
    for request in requests {
        let Some(keyed) = parse_payload(&request.body) else {
            continue;
        };
        match seen.get(&keyed.key) {
            Some(highest) if keyed.seq <= *highest => {} // a redelivery
            Some(highest) => assert_eq!(
                keyed.seq,
                highest + 1,
                "key {} jumped from seq {highest} to {} (a record was skipped or overtaken)",
                keyed.key,
                keyed.seq
            ),
            None => assert_eq!(
                keyed.seq, 0,
                "key {} started at seq {}",
                keyed.key, keyed.seq
            ),
        }
        let entry = seen.entry(keyed.key.clone()).or_insert(keyed.seq);
        *entry = (*entry).max(keyed.seq);
    }
}

/// Deletes a topic (the large ones, so the test broker's heap does not fill up).
pub async fn delete_topic(name: &str) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().expect("admin client");
    let results = admin
        .delete_topics(
            &[name],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("delete_topics request");
    for result in results {
        result.unwrap_or_else(|(topic, error)| panic!("deleting topic {topic}: {error}"));
    }
}
