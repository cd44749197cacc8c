//! The benchmark's own tools, driven by `bench/run.py`; not part of the product.
//!
//! - `receiver`: a fast HTTP endpoint (hyper, HTTP/1.1 keep-alive) that answers 200 after
//!   an optional delay, counts requests, records received and distinct records (the
//!   sequence number at the start of each value) and measures each record's latency from
//!   its timestamp (the broker's append time with `LogAppendTime`) to its arrival. A request
//!   is one record, or a batch (the sidecar's `delivery.batch` bodies, Benthos's multipart
//!   batches): `receiver_bodies` finds the records by Content-Type. `GET /stats` reports,
//!   `POST /reset` clears.
//! - `create-topic`: a topic with `message.timestamp.type=LogAppendTime` and records up to 16 MiB;
//!   `delete-topic`.
//! - `produce`: a backlog of fixed-size keyed records, as fast as the broker takes them.
//! - `produce-rate`: an open-loop producer at a fixed rate (sends on schedule, never waits
//!   for acknowledgements).
//! - `plain-consumer`: a plain librdkafka consumer (rdkafka's `BaseConsumer`, one poll loop,
//!   `fetch.wait.max.ms` 100, no HTTP): the latency floor the sidecar's added latency is set
//!   beside, measured as receive time − record timestamp on the same clock as the receiver's.
//! - `wait-committed`: polls a group's committed offsets until they reach a target sum.
//! - `client-load`: the sidecar's HTTP path without Kafka (its request building and its
//!   pooled hyper client, `HttpClient`) POSTing records to an endpoint, at full speed with a
//!   fixed number of requests in flight or paced at a rate; prints the CPU this process spent
//!   per request. The floor under the sidecar's own per-record cost, next to kcat's for Kafka.
//! - `format-cost`: CPU time of building one record's request per `delivery.format` and with
//!   signing, in this process on one thread (the sidecar's `RequestTemplate`, no network).
//! - `json-check-cost`: the cost of deciding whether a value is embedded as JSON, per
//!   candidate check, and of whole batch bodies per record (in process, one thread).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use tokio::net::TcpListener;

#[path = "receiver_bodies.rs"]
mod receiver_bodies;
use receiver_bodies::{Entry, Malformed};

#[derive(Parser)]
#[command(about = "Benchmark tools for kafka-webhook-sidecar (driven by bench/run.py)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the counting HTTP endpoint; prints `listening <addr>` once bound.
    Receiver {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Answer each request after this many milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Serve at most this many requests at once, the rest waiting in a queue (so latency
        /// rises with concurrency); 0 = no limit.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Also serve on this Unix domain socket (created; removed first if it exists).
        #[arg(long)]
        unix: Option<std::path::PathBuf>,
    },
    CreateTopic {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 12)]
        partitions: i32,
    },
    /// Deletes a topic (the scale bench's, so the broker does not collect thousands of
    /// partitions over a run).
    DeleteTopic {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
    },
    Produce {
        #[command(flatten)]
        records: RecordArgs,
        #[arg(long)]
        count: u64,
    },
    ProduceRate {
        #[command(flatten)]
        records: RecordArgs,
        /// Records per second.
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        seconds: f64,
        /// The producer's `linger.ms`: 0 sends every record in its own produce request (the
        /// consumer's worst case); 5 is librdkafka's default and the Java client's since
        /// Kafka 4.0.
        #[arg(long, default_value_t = 0)]
        linger_ms: u64,
    },
    /// Joins `group` on `topic` and polls until it has seen `count` records whose sequence
    /// number is at least `first_seq`; prints one JSON line: their latency (receive time −
    /// record timestamp) p50/p99/p999/max in ms.
    PlainConsumer {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        group: String,
        /// Records before this sequence number (the warm-up) are not measured.
        #[arg(long, default_value_t = 0)]
        first_seq: u64,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 100)]
        fetch_wait_max_ms: u64,
        #[arg(long, default_value_t = 300.0)]
        timeout_s: f64,
        /// Forward instead: POST each record to this URL (hyper-util's pooled client, one
        /// request at a time per partition, in offset order, like the sidecar's partition
        /// mode) and print how many were answered; the receiver there measures latency. What
        /// librdkafka and hyper alone cost on the sidecar's path.
        #[arg(long)]
        forward: Option<String>,
    },
    WaitCommitted {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        topic: String,
        /// Sum of committed offsets over all partitions to wait for.
        #[arg(long)]
        target: i64,
        #[arg(long, default_value_t = 600.0)]
        timeout_s: f64,
    },
    /// Prints one JSON line: requests served, requests/s, CPU s per 100k requests, context
    /// switches per request.
    ClientLoad {
        /// The endpoint (http://, or the URL's path and Host with --unix).
        #[arg(long)]
        url: String,
        /// Deliver over this Unix domain socket (`delivery.unix_socket`).
        #[arg(long)]
        unix: Option<std::path::PathBuf>,
        /// Loops, each one request at a time (like the sidecar's partitions or deliveries).
        #[arg(long, default_value_t = 96)]
        concurrency: u64,
        /// Requests per second over all loops, each loop sending on its own schedule; none =
        /// as fast as answers come.
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long)]
        seconds: f64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// hyper-util's pooled client alone (default settings, a fixed body and no headers of
        /// the sidecar's): the floor of the HTTP stack itself.
        #[arg(long)]
        bare: bool,
    },
    /// Prints one JSON line: microseconds per record to prepare and sign a request, per format.
    FormatCost {
        /// Records per measured variant.
        #[arg(long, default_value_t = 200_000)]
        count: u64,
        /// Value size in bytes (values are not JSON, like the backlog's).
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    /// Prints one JSON line: what deciding "embed as JSON or base64" costs per value, for
    /// each candidate check (the old skip-only `IgnoredAny`, the strict check the sidecar
    /// uses, a full `Value`, a `RawValue`, UTF-8 then `IgnoredAny`), on a JSON value and a
    /// binary one; and building whole batch bodies, per record, with the sidecar's encoder.
    JsonCheckCost {
        /// Values per measured variant.
        #[arg(long, default_value_t = 200_000)]
        count: u64,
        /// Value size in bytes (about: the JSON value is made of whole members).
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    /// Prints one JSON line: what deciding a record's routes costs (`routing::Matcher`, CEL),
    /// in µs per record, in this process on one thread: one filter on the topic and key; ten
    /// first-match rules on the key (the record matches the k-th, k = 1…10 in turn); ten
    /// routes with a key filter each; and a filter on a header and one on a CloudEvents
    /// attribute (which builds the `headers` map and the `ce` attributes).
    RouteCost {
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
}

/// What both producers write, and where.
#[derive(clap::Args)]
struct RecordArgs {
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Distinct keys, assigned round-robin (`key-{i % keys}`).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// First sequence number written into the bodies.
    #[arg(long, default_value_t = 0)]
    first_seq: u64,
    /// The producer's `batch.size` in bytes (librdkafka's default 1 MB; the Java client's
    /// 16 KiB): the consumer fetches whole batches, so it sets the floor of its prefetch.
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u64,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Receiver {
            listen,
            delay_ms,
            threads,
            workers,
            unix,
        } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()?
            .block_on(receiver(
                listen,
                unix,
                Duration::from_millis(delay_ms),
                workers,
            )),
        Command::CreateTopic {
            bootstrap,
            topic,
            partitions,
        } => create_topic(&bootstrap, &topic, partitions),
        Command::DeleteTopic { bootstrap, topic } => delete_topic(&bootstrap, &topic),
        Command::Produce { records, count } => produce(&records, count, None),
        Command::ProduceRate {
            records,
            rate,
            seconds,
            linger_ms,
        } => produce(
            &records,
            (rate as f64 * seconds).round() as u64,
            Some((rate, linger_ms)),
        ),
        Command::PlainConsumer {
            bootstrap,
            topic,
            group,
            first_seq,
            count,
            fetch_wait_max_ms,
            timeout_s,
            forward,
        } => {
            let consumer = plain_client(&bootstrap, &group, fetch_wait_max_ms)?;
            consumer.subscribe(&[&topic])?;
            let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
            match forward {
                None => plain_consumer(&consumer, first_seq, count, deadline),
                Some(url) => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?
                    .block_on(plain_forwarder(consumer, &url, first_seq, count, deadline)),
            }
        }
        Command::WaitCommitted {
            bootstrap,
            group,
            topic,
            target,
            timeout_s,
        } => wait_committed(&bootstrap, &group, &topic, target, timeout_s),
        Command::ClientLoad {
            url,
            unix,
            concurrency,
            rate,
            seconds,
            size,
            bare,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(client_load(
                url,
                unix,
                concurrency,
                rate,
                Duration::from_secs_f64(seconds),
                size,
                bare,
            )),
        Command::FormatCost { count, size } => format_cost(count, size),
        Command::JsonCheckCost { count, size } => json_check_cost(count, size),
        Command::RouteCost { count } => route_cost(count),
    }
}

// ---------------------------------------------------------------------------------------
// Client load

/// `concurrency` loops, each building a record's request as the sidecar does and sending it
/// through the sidecar's `HttpClient`, one at a time, until `duration` passed; with `rate`,
/// loop `i` sends every `concurrency / rate` seconds (skipping a missed slot, never bursting).
/// Runs on the sidecar's runtime shape (tokio's default worker count).
async fn client_load(
    url: String,
    unix: Option<std::path::PathBuf>,
    concurrency: u64,
    rate: Option<u64>,
    duration: Duration,
    size: usize,
    bare: bool,
) -> Result<()> {
    use kafka_webhook_sidecar::config::Config;
    use kafka_webhook_sidecar::delivery::{AttemptOutcome, HttpClient, Transport};
    use kafka_webhook_sidecar::format::RequestTemplate;
    use kafka_webhook_sidecar::ops::metrics::Metrics;
    use kafka_webhook_sidecar::record::Record;

    if bare && unix.is_some() {
        bail!("--bare speaks TCP only (hyper-util's HttpConnector); leave out --unix");
    }
    let mut config = Config::new("127.0.0.1:9092", "g", &["bench"], &url);
    config.delivery.unix_socket = unix.map(|path| path.to_string_lossy().into_owned());
    let settings = config.settings().context("bench config")?;
    let template = Arc::new(RequestTemplate::new(&settings.delivery));
    let client = Arc::new(HttpClient::new(
        &settings.delivery.endpoint,
        Metrics::new(),
    )?);
    let timeout = settings.delivery.endpoint.timeout;
    let hyper = bare.then(|| {
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build::<_, Full<Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new())
    });
    let uri: http::Uri = url.parse()?;
    let body = Bytes::from(vec![b'x'; size]);
    let topic: Arc<str> = Arc::from("bench");
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let before = (process_cpu_seconds(), process_context_switches());
    let started = tokio::time::Instant::now();
    let end = started + duration;
    let period = rate.map(|rate| Duration::from_secs_f64(concurrency as f64 / rate.max(1) as f64));
    let mut loops = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let (template, client, hyper) = (template.clone(), client.clone(), hyper.clone());
        let (served, failed) = (served.clone(), failed.clone());
        let (uri, body, topic) = (uri.clone(), body.clone(), topic.clone());
        loops.spawn(async move {
            // Paced loops start spread over one period, as partitions' records would arrive.
            let mut ticks = period.map(|period| {
                let first = started + period.mul_f64(task as f64 / concurrency as f64);
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                ticks
            });
            let mut seq = task;
            while tokio::time::Instant::now() < end {
                if let Some(ticks) = ticks.as_mut() {
                    ticks.tick().await;
                }
                let answered = match &hyper {
                    // The same body every time, no headers of ours.
                    Some(hyper) => match Request::post(uri.clone()).body(Full::new(body.clone())) {
                        Ok(request) => match hyper.request(request).await {
                            Ok(response) => {
                                response.status().is_success()
                                    && response.into_body().collect().await.is_ok()
                            }
                            Err(_) => false,
                        },
                        Err(_) => false,
                    },
                    // A record's request as the sidecar builds and sends it.
                    None => {
                        let mut value = format!("{seq} ").into_bytes();
                        value.resize(size.max(value.len()), b'x');
                        let record = Record {
                            topic: topic.clone(),
                            partition: (task % 12) as i32,
                            offset: seq as i64,
                            timestamp_ms: Some(unix_micros() as i64 / 1000),
                            key: Some(Bytes::from(format!("key-{}", seq % 10_000))),
                            value: Some(Bytes::from(value)),
                            headers: Vec::new(),
                            received_at: Instant::now(),
                            target: None,
                        };
                        let request =
                            template.into_request(template.prepare(&record), SystemTime::now());
                        matches!(
                            client.send(request, timeout).await,
                            AttemptOutcome::Status { status, .. } if (200..300).contains(&status)
                        )
                    }
                };
                let counter = if answered { &served } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                seq += concurrency;
            }
        });
    }
    while loops.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu, switches) = (
        process_cpu_seconds() - before.0,
        process_context_switches() - before.1,
    );
    let served = served.load(Ordering::Relaxed);
    let per = |x: f64| x / served.max(1) as f64;
    println!(
        "{}",
        json!({
            "requests": served,
            "failed": failed.load(Ordering::Relaxed),
            "per_s": (served as f64 / elapsed).round(),
            "cpu_s_per_100k": (per(cpu) * 1e5 * 100.0).round() / 100.0,
            "context_switches_per_request": (per(switches as f64) * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

/// This process's user + system CPU seconds so far (`/proc/self/stat`, in clock ticks of
/// 1/100 s, Linux's `USER_HZ` on every architecture the bench runs on).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Voluntary + involuntary context switches of every thread of this process so far.
fn process_context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// Format cost

/// Times `prepare` + `request` (one attempt) per variant over `count` records of `size`
/// bytes, best of three rounds; prints `{"raw": µs, …}`.
fn format_cost(count: u64, size: usize) -> Result<()> {
    use kafka_webhook_sidecar::config::{Config, Format, Secret};
    use kafka_webhook_sidecar::format::RequestTemplate;
    use kafka_webhook_sidecar::record::Record;

    let variants = [
        ("raw", Format::Raw, false),
        ("cloudevents_binary", Format::CloudeventsBinary, false),
        (
            "cloudevents_structured",
            Format::CloudeventsStructured,
            false,
        ),
        ("raw_signed", Format::Raw, true),
    ];
    let value = Bytes::from(vec![b'x'; size]);
    let records: Vec<Record> = (0..count.min(10_000))
        .map(|seq| bench_record(seq, value.clone()))
        .collect();
    let mut result = serde_json::Map::new();
    for (name, format, signed) in variants {
        let mut config = Config::new("127.0.0.1:9092", "g", &["bench"], "http://127.0.0.1:1/");
        config.delivery.format = format;
        if signed {
            config.delivery.signing.secrets =
                vec![Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())];
        }
        let settings = config.settings().context("bench config")?;
        let template = RequestTemplate::new(&settings.delivery);
        let best_us = best_ns(count, |i| {
            let prepared = template.prepare(&records[(i as usize) % records.len()]);
            std::hint::black_box(template.into_request(prepared, SystemTime::now()));
        }) / 1000.0;
        result.insert(name.into(), json!((best_us * 100.0).round() / 100.0));
    }
    println!("{}", serde_json::Value::Object(result));
    Ok(())
}

/// See `Command::RouteCost`.
fn route_cost(count: u64) -> Result<()> {
    use kafka_webhook_sidecar::config::Config;
    use kafka_webhook_sidecar::ops::Metrics;
    use kafka_webhook_sidecar::routing::{Matcher, RouteMatch};

    let rules: String = (0..10)
        .map(|k| format!("{{match: 'key == \"key-{k}\"', path: /r{k}}},"))
        .collect();
    let ten_routes: String = (0..10)
        .map(|k| format!("{{name: r{k}, filter: 'key == \"key-{k}\"'}},"))
        .collect();
    let variants = [
        (
            "one_filter",
            "[{name: a, filter: 'topic == \"bench\" && key != \"none\"'}]".to_string(),
        ),
        ("ten_rules", format!("[{{name: a, rules: [{rules}]}}]")),
        ("ten_routes", format!("[{ten_routes}]")),
        (
            "header_filter",
            "[{name: a, filter: '\"env\" in headers && headers[\"env\"] == \"prod\"'}]".to_string(),
        ),
        (
            "ce_type_filter",
            "[{name: a, filter: 'ce.type == \"order.created\"'}]".to_string(),
        ),
    ];
    let records: Vec<_> = (0..10_000u64)
        .map(|seq| kafka_webhook_sidecar::record::Record {
            key: Some(Bytes::from(format!("key-{}", seq % 10))),
            headers: vec![
                ("env".to_string(), Some(Bytes::from_static(b"prod"))),
                (
                    "content-type".to_string(),
                    Some(Bytes::from_static(b"application/json")),
                ),
            ],
            ..bench_record(seq, Bytes::from(vec![b'x'; 1024]))
        })
        .collect();
    let mut result = serde_json::Map::new();
    for (name, routes) in variants {
        let text = format!(
            "kafka: {{bootstrap_servers: 'k:9092', group_id: g, topics: [bench]}}\n\
             delivery: {{url: 'http://127.0.0.1:1/'}}\nroutes: {routes}\n"
        );
        let settings = Config::from_yaml(&text, |_| None)
            .and_then(|config| config.settings())
            .context("bench routes")?;
        let matcher = Matcher::new(
            settings.routes.iter().map(RouteMatch::new).collect(),
            settings.delivery.format.cloudevents.clone(),
            "application/json".into(),
            Metrics::new(),
        );
        let mut decisions = Vec::new();
        let best_us = best_ns(count, |i| {
            matcher.decide(&records[(i as usize) % records.len()], &mut decisions);
            std::hint::black_box(&decisions);
        }) / 1000.0;
        result.insert(name.into(), json!((best_us * 1000.0).round() / 1000.0));
    }
    println!("{}", serde_json::Value::Object(result));
    Ok(())
}

/// Record `seq` of the in-process cost runs: topic `bench`, one of 12 partitions, one of
/// 10,000 keys.
fn bench_record(seq: u64, value: Bytes) -> kafka_webhook_sidecar::record::Record {
    kafka_webhook_sidecar::record::Record {
        topic: Arc::from("bench"),
        partition: (seq % 12) as i32,
        offset: seq as i64,
        timestamp_ms: Some(1_700_000_000_000 + seq as i64),
        key: Some(Bytes::from(format!("key-{}", seq % 10_000))),
        value: Some(value),
        headers: Vec::new(),
        received_at: Instant::now(),
        target: None,
    }
}

/// Best of three rounds of `count` calls of `f`, in ns per call.
fn best_ns(count: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        for i in 0..count {
            f(i);
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e9 / count as f64);
    }
    best
}

/// See `Command::JsonCheckCost`.
fn json_check_cost(count: u64, size: usize) -> Result<()> {
    use kafka_webhook_sidecar::config::{BatchBody, CloudEventsSettings};
    use kafka_webhook_sidecar::format::embed::is_strict_json;
    use kafka_webhook_sidecar::format::BatchEncoder;
    use kafka_webhook_sidecar::record::Record;
    use serde::de::IgnoredAny;
    use serde_json::value::RawValue;

    // A typical event: an object of short strings and numbers, a nested array, ~`size` bytes.
    let mut text = String::from("{\"id\":\"order-1\",\"items\":[");
    let mut n = 0;
    while text.len() + 64 < size {
        if n > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            "{{\"sku\":\"A-{n:04}\",\"qty\":{n},\"note\":\"caf\u{e9} ok\"}}"
        ));
        n += 1;
    }
    text.push_str("],\"total\":12.5}");
    let document = Bytes::from(text.into_bytes());
    let binary = Bytes::from((0..size).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>());
    type Check = fn(&[u8]) -> bool;
    let checks: [(&str, Check); 5] = [
        ("ignored_any_old", |b| {
            serde_json::from_slice::<IgnoredAny>(b).is_ok()
        }),
        ("strict_new", is_strict_json),
        ("value", |b| {
            serde_json::from_slice::<serde_json::Value>(b).is_ok()
        }),
        ("raw_value", |b| {
            serde_json::from_slice::<&RawValue>(b).is_ok()
        }),
        ("utf8_then_ignored_any", |b| {
            std::str::from_utf8(b).is_ok_and(|t| serde_json::from_str::<IgnoredAny>(t).is_ok())
        }),
    ];
    let mut result = serde_json::Map::new();
    result.insert("json_value_bytes".into(), json!(document.len()));
    for (name, check) in checks {
        let on_json = best_ns(count, |_| {
            std::hint::black_box(check(std::hint::black_box(&document)));
        });
        let on_binary = best_ns(count, |_| {
            std::hint::black_box(check(std::hint::black_box(&binary)));
        });
        result.insert(
            name.into(),
            json!({"json_ns": (on_json * 10.0).round() / 10.0,
                   "json_mb_per_s": (document.len() as f64 / on_json * 1e3).round(),
                   "binary_ns": (on_binary * 10.0).round() / 10.0}),
        );
    }
    // Whole bodies of 500 records, per record.
    let settings = CloudEventsSettings {
        source: "/kafka/{topic}".into(),
        event_type: "t".into(),
    };
    for (name, body, value) in [
        ("batch_json_of_json", BatchBody::JsonArray, &document),
        ("batch_ndjson_of_json", BatchBody::Ndjson, &document),
        ("batch_json_of_binary", BatchBody::JsonArray, &binary),
        (
            "cloudevents_batch_of_json",
            BatchBody::CloudEvents,
            &document,
        ),
    ] {
        let encoder = BatchEncoder::new(body, settings.clone(), "application/json".into());
        let records: Vec<Record> = (0..500)
            .map(|seq| bench_record(seq, value.clone()))
            .collect();
        let per_batch = best_ns((count / 500).max(10), |_| {
            std::hint::black_box(encoder.body(&records));
        });
        result.insert(
            format!("{name}_ns_per_record"),
            json!((per_batch / 500.0 * 10.0).round() / 10.0),
        );
    }
    println!("{}", serde_json::Value::Object(result));
    Ok(())
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Receiver

#[derive(Default)]
struct Tally {
    requests: u64,
    /// Records received, duplicates included (a batch request carries many).
    records: u64,
    duplicates: u64,
    distinct: u64,
    /// Batch requests whose body did not parse as its Content-Type says, or held another
    /// number of entries than its `kafka-batch-records` header.
    malformed: u64,
    last_malformed: Option<String>,
    /// Bit per sequence number seen.
    seen: Vec<u64>,
    /// Microseconds from append time to arrival, one per record that carried a timestamp.
    latencies_us: Vec<i64>,
    /// Per single-record request: (arrival µs since the epoch, latency µs, partition, offset),
    /// served by `GET /records` to see *when* the slow records arrived and from where.
    arrivals: Vec<(u64, i64, i32, i64)>,
    /// Microseconds from a request's arrival to its answer (queue and service).
    service_us: Vec<u64>,
    first_us: u64,
    last_us: u64,
}

struct Receiver {
    delay: Duration,
    /// With `--workers`: the workers; requests beyond them queue.
    workers: Option<tokio::sync::Semaphore>,
    tally: Mutex<Tally>,
    /// Requests being answered right now, and the most at once since the last reset.
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

impl Receiver {
    /// Counts one request and its records, all arrived now (parsed before, outside the lock).
    fn record(&self, entries: &[Entry], origin: Option<(i32, i64)>) {
        let now = unix_micros();
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        if let (
            Some((partition, offset)),
            [Entry {
                timestamp_ms: Some(ms),
                ..
            }],
        ) = (origin, entries)
        {
            tally
                .arrivals
                .push((now, now as i64 - ms * 1000, partition, offset));
        }
        tally.requests += 1;
        tally.records += entries.len() as u64;
        if tally.first_us == 0 {
            tally.first_us = now;
        }
        tally.last_us = now;
        for entry in entries {
            if let Some(ms) = entry.timestamp_ms {
                tally.latencies_us.push(now as i64 - ms * 1000);
            }
            if let Some(seq) = entry.seq {
                let (word, bit) = ((seq / 64) as usize, seq % 64);
                if tally.seen.len() <= word {
                    tally.seen.resize(word + 1024, 0);
                }
                if tally.seen[word] & (1 << bit) != 0 {
                    tally.duplicates += 1;
                } else {
                    tally.seen[word] |= 1 << bit;
                    tally.distinct += 1;
                }
            }
        }
    }

    fn malformed(&self, Malformed(error): Malformed) {
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        tally.requests += 1;
        tally.malformed += 1;
        tally.last_malformed = Some(error);
    }

    fn stats(&self) -> serde_json::Value {
        // Copy under the lock, sort outside it: requests keep flowing while run.py polls.
        let tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = json!({
            "requests": tally.requests,
            "records": tally.records,
            "malformed": tally.malformed,
            "last_malformed": tally.last_malformed,
            "distinct": tally.distinct,
            "duplicates": tally.duplicates,
            "first_us": tally.first_us,
            "last_us": tally.last_us,
        });
        let mut latencies = tally.latencies_us.clone();
        let mut service = tally.service_us.clone();
        drop(tally);
        service.sort_unstable();
        let service_pct = |q: f64| percentile_ms(&service, q);
        stats["service_ms"] = json!({"p50": service_pct(0.50), "p99": service_pct(0.99)});
        latencies.sort_unstable();
        let pct = |q: f64| percentile_ms(&latencies, q);
        stats["peak_in_flight"] = json!(self.peak_in_flight.load(Ordering::Relaxed));
        stats["latency_ms"] = json!({
            "count": latencies.len(),
            "p50": pct(0.50),
            "p99": pct(0.99),
            "p999": pct(0.999),
            "max": latencies.last().map(|v| *v as f64 / 1000.0),
        });
        stats
    }

    fn reset(&self) {
        *self.tally.lock().unwrap_or_else(|p| p.into_inner()) = Tally::default();
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

async fn receiver(
    listen: SocketAddr,
    unix: Option<std::path::PathBuf>,
    delay: Duration,
    workers: usize,
) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .context("binding receiver")?;
    let state = Arc::new(Receiver {
        delay,
        workers: (workers > 0).then(|| tokio::sync::Semaphore::new(workers)),
        tally: Mutex::new(Tally::default()),
        in_flight: AtomicU64::new(0),
        peak_in_flight: AtomicU64::new(0),
    });
    if let Some(path) = unix {
        let _ = std::fs::remove_file(&path);
        let unix = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("binding {}", path.display()))?;
        let state = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = unix.accept().await {
                serve(state.clone(), TokioIo::new(stream));
            }
        });
    }
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        serve(state.clone(), TokioIo::new(stream));
    }
}

fn serve<S>(state: Arc<Receiver>, io: TokioIo<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| handle(state.clone(), req));
        let _ = ConnBuilder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    });
}

async fn handle(
    state: Arc<Receiver>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == http::Method::GET && path == "/stats" {
        return Ok(Response::new(Full::new(Bytes::from(
            state.stats().to_string(),
        ))));
    }
    if req.method() == http::Method::GET && path == "/distinct" {
        // What run.py polls while a measured phase runs: one number, no copy or sort of
        // the latencies on the receiver's threads between the requests it measures.
        let distinct = state
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .distinct;
        return Ok(Response::new(Full::new(Bytes::from(distinct.to_string()))));
    }
    if req.method() == http::Method::GET && path == "/records" {
        let arrivals = state
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .arrivals
            .clone();
        return Ok(Response::new(Full::new(Bytes::from(
            json!(arrivals).to_string(),
        ))));
    }
    if req.method() == http::Method::POST && path == "/reset" {
        state.reset();
        return Ok(Response::new(Full::new(Bytes::new())));
    }
    let arrived = Instant::now();
    let now_in_flight = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    state
        .peak_in_flight
        .fetch_max(now_in_flight, Ordering::Relaxed);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let timestamp_ms = header("kafka-timestamp").and_then(|v| v.parse::<i64>().ok());
    let batch_records = header("kafka-batch-records").and_then(|v| v.parse::<usize>().ok());
    let origin = header("kafka-partition")
        .and_then(|v| v.parse::<i32>().ok())
        .zip(header("kafka-offset").and_then(|v| v.parse::<i64>().ok()));
    let content_type = header("content-type").map(str::to_owned);
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            state.in_flight.fetch_sub(1, Ordering::Relaxed);
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let parsed = receiver_bodies::entries(content_type.as_deref(), &body, timestamp_ms).and_then(
        |entries| match batch_records {
            Some(n) if n != entries.len() => Err(Malformed(format!(
                "kafka-batch-records: {n}, but {} entries in the body",
                entries.len()
            ))),
            _ => Ok(entries),
        },
    );
    match parsed {
        Ok(entries) => state.record(&entries, origin),
        // Acknowledged all the same, so that a sender with a blocking failure policy does
        // not stall the run: its records are missing from `distinct`, which fails the run,
        // and `malformed` / `last_malformed` say why.
        Err(error) => state.malformed(error),
    }
    // A worker serves the request (after the queue, with --workers).
    let worker = match &state.workers {
        Some(workers) => workers.acquire().await.ok(),
        None => None,
    };
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    drop(worker);
    state.in_flight.fetch_sub(1, Ordering::Relaxed);
    let took = arrived.elapsed().as_micros() as u64;
    state
        .tally
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .service_us
        .push(took);
    Ok(Response::new(Full::new(Bytes::new())))
}

// ---------------------------------------------------------------------------------------
// Kafka tools

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime")
        // Records up to 16 MiB (the scale bench's 8 MiB rows), whatever the broker's default.
        .set("max.message.bytes", "16777216");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics(
        [&new_topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("creating topic {name}: {code}");
        }
    }
    Ok(())
}

fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.delete_topics(
        &[topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("deleting topic {name}: {code}");
        }
    }
    Ok(())
}

/// Sends `count` records; with `rate` = (records/s, linger.ms), on an open-loop schedule.
fn produce(records: &RecordArgs, count: u64, rate: Option<(u64, u64)>) -> Result<()> {
    let RecordArgs {
        bootstrap,
        topic,
        size,
        keys,
        first_seq,
        batch_size,
    } = records;
    let linger = rate.map_or(20, |(_, linger_ms)| linger_ms).to_string();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", &linger)
        .set("batch.size", batch_size.to_string())
        .set(
            "message.max.bytes",
            (size + (64 << 10)).max(1_000_000).to_string(),
        )
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .set("acks", "all")
        .create()?;
    let keys = (*keys).max(1);
    let started = Instant::now();
    let mut value = vec![b'x'; (*size).max(21)];
    for i in 0..count {
        if let Some((rate, _)) = rate {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let seq = first_seq + i;
        let prefix = format!("{seq}|");
        value[..prefix.len()].copy_from_slice(prefix.as_bytes());
        let key = format!("key-{}", i % keys);
        let mut record = BaseRecord::to(topic.as_str()).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        bail!("producing: {e}");
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the producer")?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"records": count, "seconds": elapsed, "per_second": count as f64 / elapsed})
    );
    Ok(())
}

/// The plain consumer's client: librdkafka's defaults but for the fetch wait.
fn plain_client(bootstrap: &str, group: &str, fetch_wait_max_ms: u64) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string())
        .create()?)
}

/// A plain consumer's latency: what any librdkafka application sees on this broker, at this
/// rate, on this machine, with no HTTP in between.
fn plain_consumer(
    consumer: &BaseConsumer,
    first_seq: u64,
    count: u64,
    deadline: Instant,
) -> Result<()> {
    use rdkafka::Message;
    let mut latencies_us: Vec<i64> = Vec::with_capacity(count as usize);
    while (latencies_us.len() as u64) < count {
        if Instant::now() > deadline {
            bail!("timed out with {} of {count} records", latencies_us.len());
        }
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = result.context("consuming")?;
        let now = unix_micros() as i64;
        let seq = message
            .payload()
            .and_then(receiver_bodies::parse_seq)
            .unwrap_or(0);
        if let (Some(ms), true) = (message.timestamp().to_millis(), seq >= first_seq) {
            latencies_us.push(now - ms * 1000);
        }
    }
    latencies_us.sort_unstable();
    let pct = |q: f64| percentile_ms(&latencies_us, q);
    println!(
        "{}",
        json!({"count": latencies_us.len(), "p50": pct(0.50), "p99": pct(0.99),
               "p999": pct(0.999), "max": pct(1.0)})
    );
    Ok(())
}

/// The plain consumer with an HTTP hop: polls on a blocking thread and hands each record to
/// its partition's task, which POSTs records one at a time with the headers the receiver
/// measures by. Ends when `count` records from `first_seq` on were answered.
async fn plain_forwarder(
    consumer: BaseConsumer,
    url: &str,
    first_seq: u64,
    count: u64,
    deadline: Instant,
) -> Result<()> {
    use rdkafka::Message;
    type Forwarded = (i32, i64, i64, Bytes);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
    let uri: http::Uri = url.parse()?;
    let answered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (sender, mut records) = tokio::sync::mpsc::unbounded_channel::<Forwarded>();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                let Some(result) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let message = result.context("consuming")?;
                let value = Bytes::copy_from_slice(message.payload().unwrap_or_default());
                let timestamp = message.timestamp().to_millis().unwrap_or(0);
                let forwarded = (message.partition(), message.offset(), timestamp, value);
                if sender.send(forwarded).is_err() {
                    break;
                }
            }
            Ok(())
        })
    };
    let mut partitions: std::collections::HashMap<
        i32,
        tokio::sync::mpsc::UnboundedSender<Forwarded>,
    > = std::collections::HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let until = tokio::time::Instant::from_std(deadline);
    let mut cpu_at_first = None;
    let outcome = loop {
        if answered.load(Ordering::Relaxed) >= count {
            break Ok(());
        }
        let next = tokio::select! {
            next = records.recv() => next,
            _ = done.notified() => continue,
            _ = tokio::time::sleep_until(until) => {
                break Err(anyhow::anyhow!(
                    "timed out with {} of {count} records answered",
                    answered.load(Ordering::Relaxed)
                ));
            }
        };
        let Some(record) = next else {
            break Err(anyhow::anyhow!("the consumer stopped"));
        };
        if cpu_at_first.is_none() && receiver_bodies::parse_seq(&record.3).unwrap_or(0) >= first_seq
        {
            cpu_at_first = Some(process_cpu_seconds());
        }
        let queue = partitions.entry(record.0).or_insert_with(|| {
            let (queue, mut receive) = tokio::sync::mpsc::unbounded_channel::<Forwarded>();
            let (client, uri) = (client.clone(), uri.clone());
            let (answered, done) = (answered.clone(), done.clone());
            tasks.spawn(async move {
                while let Some((partition, offset, timestamp, value)) = receive.recv().await {
                    let measured = receiver_bodies::parse_seq(&value).unwrap_or(0) >= first_seq;
                    let request = Request::post(uri.clone())
                        .header("content-type", "application/octet-stream")
                        .header("kafka-timestamp", timestamp.to_string())
                        .header("kafka-partition", partition.to_string())
                        .header("kafka-offset", offset.to_string())
                        .body(Full::new(value))?;
                    let response = client.request(request).await?;
                    response.into_body().collect().await?;
                    if measured && answered.fetch_add(1, Ordering::Relaxed) + 1 >= count {
                        done.notify_one();
                    }
                }
                anyhow::Ok(())
            });
            queue
        });
        if queue.send(record).is_err() {
            break Err(anyhow::anyhow!("a partition's forwarding task failed"));
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(partitions);
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    polling.await??;
    outcome?;
    let measured_cpu_s = process_cpu_seconds() - cpu_at_first.unwrap_or(0.0);
    println!(
        "{}",
        json!({"answered": answered.load(Ordering::Relaxed), "measured_cpu_s": measured_cpu_s})
    );
    Ok(())
}

/// The `q` quantile (nearest rank) of `sorted` microseconds, in ms; `None` when empty.
fn percentile_ms<T: Copy + Into<i128>>(sorted: &[T], q: f64) -> Option<f64> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).map(|&v| v.into() as f64 / 1000.0)
}

fn wait_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    target: i64,
    timeout_s: f64,
) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p as i32);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
    loop {
        // Transient errors (the coordinator still loading, NotCoordinator) are retried.
        let sum: i64 = match consumer.committed_offsets(list.clone(), Duration::from_secs(10)) {
            Ok(committed) => committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum(),
            Err(error) => {
                eprintln!("committed offsets: {error} (retrying)");
                0
            }
        };
        if sum >= target || Instant::now() >= deadline {
            println!(
                "{}",
                json!({"committed": sum, "reached": sum >= target, "at_us": unix_micros()})
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_one_request_and_each_record() {
        let receiver = Receiver {
            delay: Duration::ZERO,
            workers: None,
            tally: Mutex::new(Tally::default()),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
        };
        let now_ms = (unix_micros() / 1000) as i64;
        let entry = |seq, timestamp_ms| Entry { seq, timestamp_ms };
        // A record, its duplicate, a tombstone (no sequence), a record without timestamp.
        receiver.record(
            &[
                entry(Some(7), Some(now_ms)),
                entry(Some(7), Some(now_ms)),
                entry(None, Some(now_ms)),
                entry(Some(8), None),
            ],
            None,
        );
        receiver.record(&[entry(Some(9), Some(now_ms))], Some((3, 41)));
        receiver.malformed(Malformed("JSON array: EOF".into()));
        let stats = receiver.stats();
        assert_eq!(stats["requests"], 3);
        assert_eq!(stats["records"], 5);
        assert_eq!(stats["distinct"], 3);
        assert_eq!(stats["duplicates"], 1);
        assert_eq!(stats["malformed"], 1);
        assert_eq!(stats["last_malformed"], "JSON array: EOF");
        assert_eq!(stats["latency_ms"]["count"], 4);
    }
}
