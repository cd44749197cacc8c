//! Prometheus metrics, all under the `kws_` namespace, with label values from bounded sets
//! only: topic (configured), partition (assigned), outcome, status class, kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The `partition` label of per-topic series (`admin.partition_metrics: false`).
pub const ALL_PARTITIONS: &str = "all";

/// Every metric the sidecar exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// The route these delivery metrics are of (`route` label and log field), if routed.
    pub route: Option<Arc<str>>,
    /// Per-partition gauges (`true`, the default) or one series per topic with
    /// `partition="all"` (`admin.partition_metrics: false`).
    pub per_partition: bool,
    /// Per topic, each assigned partition's head-of-line age in seconds (per-topic series
    /// only), folded into the topic's `kws_oldest_unacked_record_age_seconds` when scraped.
    pub heads: Heads,
    /// Records taken from Kafka.
    pub records_received: IntCounterVec,
    /// Records disposed of, by outcome: success, dead_lettered, dropped.
    pub deliveries: IntCounterVec,
    /// HTTP attempts by status class (2xx…5xx, timeout, connection_error).
    pub attempts: IntCounterVec,
    /// Attempts that will be retried.
    pub retries: IntCounterVec,
    /// Duration of one HTTP attempt.
    pub attempt_duration: HistogramVec,
    /// Record timestamp to acknowledgement.
    pub end_to_end_latency: HistogramVec,
    /// Records being delivered right now.
    pub in_flight: IntGauge,
    /// Partitions this member owns.
    pub assigned_partitions: IntGauge,
    /// Partitions paused, by reason: shutdown, head_of_line (waited past
    /// `delivery.pause_fetch_after`).
    pub paused_partitions: IntGaugeVec,
    /// 1 while a partition's fetching is paused because its head waited too long.
    pub partition_paused: IntGaugeVec,
    /// The shared concurrency limit toward the endpoint (requests); 0 when not configured.
    pub concurrency_limit: IntGauge,
    /// Requests waiting for a concurrency permit.
    pub concurrency_waiting: IntGauge,
    /// Decreases of the adaptive limit, by reason: latency, overload.
    pub concurrency_decreases: IntCounterVec,
    /// Requests that waited for rate-limit tokens.
    pub rate_limited_waits: prometheus::IntCounter,
    /// Time requests spent waiting for rate-limit tokens.
    pub rate_limited_wait_seconds: prometheus::Counter,
    /// High watermark minus the committable offset, per partition.
    pub consumer_lag: IntGaugeVec,
    /// Age of the oldest unacknowledged record, per partition (head-of-line signal).
    pub oldest_unacked_age: prometheus::GaugeVec,
    /// Dead-letter produce results: ok, error.
    pub dead_letter_writes: IntCounterVec,
    /// Offsets skipped because they were gone when fetched (retention, DeleteRecords).
    pub offsets_skipped: IntCounterVec,
    /// Rebalance callbacks by kind: assign, revoke, lost, error.
    pub rebalances: IntCounterVec,
    /// Offset commits by result: ok, error.
    pub commits: IntCounterVec,
    /// Time spent draining revoked partitions.
    pub rebalance_drain: Histogram,
    /// Time spent draining on shutdown.
    pub shutdown_drain: Histogram,
    /// Endpoint TLS files or token file re-read after a change, by source and result.
    pub credential_reloads: IntCounterVec,
    /// OAuth2 token requests by result: ok, error.
    pub oauth2_token_requests: IntCounterVec,
    /// Records per batch request (batching on).
    pub batch_records: Histogram,
    /// Body bytes per batch request (batching on).
    pub batch_bytes: Histogram,
    /// Records a route did not take, by route and topic.
    pub route_skipped: IntCounterVec,
    /// Records no route took, by topic.
    pub unrouted: IntCounterVec,
    /// Route expressions that failed on a record, by route.
    pub route_filter_errors: IntCounterVec,
    /// Each route's head-of-line ages and gauge, folded per topic when scraped
    /// (per-topic series only).
    folds: Arc<Mutex<Vec<(Heads, prometheus::GaugeVec)>>>,
}

/// A topic's partitions' head-of-line ages, folded into one series per topic when scraped.
type Heads = Arc<Mutex<HashMap<String, HashMap<i32, f64>>>>;

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        Self::build(registry.clone(), registry, HashMap::new())
    }

    /// The metrics of a sidecar with `routes:`: what concerns deliveries is exported only by
    /// each route's own set ([`Self::for_route`], with a `route` label); this set keeps the
    /// consumer's and partitions' metrics.
    pub fn for_routes() -> Self {
        Self::build(Registry::new(), Registry::new(), HashMap::new())
    }

    /// The metrics of route `name`: the delivery metrics (records received, deliveries,
    /// attempts, retries, latencies, in flight, flow control, dead-letter writes, credential
    /// reloads, batches, head-of-line age and pause) with a `route` label, on this set's
    /// registry; everything else shared with this set.
    pub fn for_route(&self, name: &str) -> Self {
        let labels = HashMap::from([("route".to_string(), name.to_string())]);
        let route = Self::build(Registry::new(), self.registry.clone(), labels);
        self.lock_folds()
            .push((route.heads.clone(), route.oldest_unacked_age.clone()));
        Metrics {
            registry: self.registry.clone(),
            route: Some(Arc::from(name)),
            per_partition: self.per_partition,
            consumer_lag: self.consumer_lag.clone(),
            assigned_partitions: self.assigned_partitions.clone(),
            paused_partitions: self.paused_partitions.clone(),
            offsets_skipped: self.offsets_skipped.clone(),
            rebalances: self.rebalances.clone(),
            commits: self.commits.clone(),
            rebalance_drain: self.rebalance_drain.clone(),
            shutdown_drain: self.shutdown_drain.clone(),
            route_skipped: self.route_skipped.clone(),
            unrouted: self.unrouted.clone(),
            route_filter_errors: self.route_filter_errors.clone(),
            folds: self.folds.clone(),
            ..route
        }
    }

    /// Builds every metric: those of the delivery family ([`Self::for_route`]) on `family`
    /// with `labels`, the others on `registry`.
    fn build(registry: Registry, family: Registry, labels: HashMap<String, String>) -> Self {
        let on = |in_family: bool| if in_family { &family } else { &registry };
        let opts = |in_family: bool, name: &str, help: &str| {
            let opts = Opts::new(name, help);
            if in_family {
                opts.const_labels(labels.clone())
            } else {
                opts
            }
        };
        let counter = |in_family: bool, name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(opts(in_family, name, help), labels)
                .expect("static metric definition is valid");
            on(in_family)
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let gauge = |in_family: bool, name: &str, help: &str| {
            let metric = IntGauge::with_opts(opts(in_family, name, help))
                .expect("static metric definition is valid");
            on(in_family)
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let gauge_vec = |in_family: bool, name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(opts(in_family, name, help), labels)
                .expect("static metric definition is valid");
            on(in_family)
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let latency_buckets =
            exponential_buckets(0.001, 2.0, 18).expect("static buckets are valid");
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = HistogramVec::new(
                HistogramOpts::from(opts(true, name, help)).buckets(latency_buckets.clone()),
                labels,
            )
            .expect("static metric definition is valid");
            family
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        // Exponential buckets: `count` of them from `start`, doubling.
        let histogram = |in_family: bool, name: &str, help: &str, start: f64, count: usize| {
            let buckets = exponential_buckets(start, 2.0, count).expect("static buckets are valid");
            let metric = Histogram::with_opts(
                HistogramOpts::from(opts(in_family, name, help)).buckets(buckets),
            )
            .expect("static metric definition is valid");
            on(in_family)
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let oldest_unacked_age = prometheus::GaugeVec::new(
            opts(
                true,
                "kws_oldest_unacked_record_age_seconds",
                "Time since the oldest unacknowledged record of the partition was received; 0 when none.",
            ),
            &["topic", "partition"],
        )
        .expect("static metric definition is valid");
        family
            .register(Box::new(oldest_unacked_age.clone()))
            .expect("metric names are unique");
        let counter_one = |name: &str, help: &str| {
            let metric = prometheus::IntCounter::with_opts(opts(true, name, help))
                .expect("static metric definition is valid");
            family
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let rate_limited_wait_seconds = {
            let metric = prometheus::Counter::with_opts(opts(
                true,
                "kws_rate_limited_wait_seconds_total",
                "Time requests spent waiting for rate-limit tokens.",
            ))
            .expect("static metric definition is valid");
            family
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };

        Self {
            records_received: counter(
                true,
                "kws_records_received_total",
                "Records taken from Kafka.",
                &["topic"],
            ),
            deliveries: counter(
                true,
                "kws_deliveries_total",
                "Records disposed of, by outcome (success, dead_lettered, dropped).",
                &["topic", "outcome"],
            ),
            attempts: counter(
                true,
                "kws_delivery_attempts_total",
                "HTTP attempts by status class (2xx, 3xx, 4xx, 5xx, timeout, connection_error).",
                &["topic", "class"],
            ),
            retries: counter(
                true,
                "kws_delivery_retries_total",
                "Attempts that failed and will be retried.",
                &["topic"],
            ),
            attempt_duration: histogram_vec(
                "kws_attempt_duration_seconds",
                "Duration of one HTTP attempt.",
                &["topic"],
            ),
            end_to_end_latency: histogram_vec(
                "kws_end_to_end_latency_seconds",
                "From the record timestamp to its acknowledgement.",
                &["topic"],
            ),
            in_flight: gauge(true, "kws_in_flight_records", "Records being delivered now."),
            assigned_partitions: gauge(false, "kws_assigned_partitions", "Partitions this member owns."),
            paused_partitions: gauge_vec(
                false,
                "kws_paused_partitions",
                "Partitions whose fetching is paused, by reason (shutdown; head_of_line: the oldest unacknowledged record waited past delivery.pause_fetch_after).",
                &["reason"],
            ),
            partition_paused: gauge_vec(
                true,
                "kws_partition_paused",
                "1 while the partition's fetching is paused because its head waited past delivery.pause_fetch_after.",
                &["topic", "partition"],
            ),
            concurrency_limit: gauge(
                true,
                "kws_concurrency_limit",
                "The shared limit on requests in flight toward the endpoint (delivery.concurrency; when not set, the one kafka.memory_budget pays for).",
            ),
            concurrency_waiting: gauge(
                true,
                "kws_concurrency_waiting_requests",
                "Requests waiting for a permit of the shared concurrency limit.",
            ),
            concurrency_decreases: counter(
                true,
                "kws_concurrency_limit_decreases_total",
                "Decreases of the adaptive concurrency limit, by reason (latency: x0.9; overload: halved on 429/503/504, timeout or connection error).",
                &["reason"],
            ),
            rate_limited_waits: counter_one(
                "kws_rate_limited_requests_total",
                "Requests that waited for rate-limit tokens (delivery.rate_limit).",
            ),
            rate_limited_wait_seconds,
            consumer_lag: gauge_vec(
                false,
                "kws_consumer_lag_records",
                "High watermark minus committable offset, per partition.",
                &["topic", "partition"],
            ),
            oldest_unacked_age,
            dead_letter_writes: counter(
                true,
                "kws_dead_letter_writes_total",
                "Records produced to the dead-letter topic, by result (ok, error).",
                &["result"],
            ),
            offsets_skipped: counter(
                false,
                "kws_offsets_skipped_total",
                "Offsets skipped without delivery because the broker no longer had them (retention or DeleteRecords removed them before they were consumed): data loss.",
                &["topic"],
            ),
            rebalances: counter(
                false,
                "kws_rebalances_total",
                "Rebalance events by kind (assign, revoke, lost, error).",
                &["kind"],
            ),
            commits: counter(
                false,
                "kws_offset_commits_total",
                "Offset commits by result (ok, error, timeout: a shutdown commit that did not answer in time).",
                &["result"],
            ),
            rebalance_drain: histogram(
                false,
                "kws_rebalance_drain_seconds",
                "Time spent draining revoked partitions.",
                0.01,
                14,
            ),
            shutdown_drain: histogram(
                false,
                "kws_shutdown_drain_seconds",
                "Time spent draining on shutdown.",
                0.01,
                14,
            ),
            credential_reloads: counter(
                true,
                "kws_endpoint_credential_reloads_total",
                "Endpoint credential files re-read after they changed, by source (tls_files, bearer_token_file) and result (ok; error: the previous files stay in use).",
                &["source", "result"],
            ),
            oauth2_token_requests: counter(
                true,
                "kws_oauth2_token_requests_total",
                "OAuth2 token requests by result (ok, error).",
                &["result"],
            ),
            batch_records: histogram(
                true,
                "kws_batch_records",
                "Records per batch request (first attempt of each batch).",
                1.0,
                15,
            ),
            batch_bytes: histogram(
                true,
                "kws_batch_bytes",
                "Body bytes per batch request (first attempt of each batch).",
                1024.0,
                17,
            ),
            route_skipped: counter(
                false,
                "kws_route_skipped_records_total",
                "Records of a topic a route reads that it did not take (its filter was false, or no rule matched and it has no default), by route; committed past once the routes that took them acknowledged.",
                &["route", "topic"],
            ),
            unrouted: counter(
                false,
                "kws_unrouted_records_total",
                "Records that no route took: acknowledged (committed past) without delivery.",
                &["topic"],
            ),
            route_filter_errors: counter(
                false,
                "kws_route_expression_errors_total",
                "Route filter or rule expressions that failed on a record (e.g. a missing header), taken as false, by route.",
                &["route"],
            ),
            registry,
            route: None,
            per_partition: true,
            heads: Arc::default(),
            folds: Arc::default(),
        }
    }

    /// One series per topic for the per-partition gauges (`admin.partition_metrics: false`).
    pub fn per_topic(mut self) -> Self {
        self.per_partition = false;
        self
    }

    /// [`Self::heads`], locked (a panic while holding it leaves whole entries only).
    pub fn lock_heads(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<i32, f64>>> {
        self.heads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The label value of `partition` in the per-partition gauges.
    pub fn partition_label(&self, partition: i32) -> String {
        if self.per_partition {
            partition.to_string()
        } else {
            ALL_PARTITIONS.to_string()
        }
    }

    fn lock_folds(&self) -> std::sync::MutexGuard<'_, Vec<(Heads, prometheus::GaugeVec)>> {
        self.folds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if !self.per_partition {
            fold(&self.heads, &self.oldest_unacked_age);
            for (heads, gauge) in self.lock_folds().iter() {
                fold(heads, gauge);
            }
        }
        let mut buffer = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(error) = encoder.encode_utf8(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "Could not encode metrics");
        }
        buffer
    }
}

/// Each topic's oldest head-of-line age, folded from its partitions now.
fn fold(heads: &Heads, gauge: &prometheus::GaugeVec) {
    let heads = heads
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    gauge.reset();
    for (topic, partitions) in heads.iter() {
        let oldest = partitions.values().copied().fold(0.0, f64::max);
        gauge
            .with_label_values(&[topic, ALL_PARTITIONS])
            .set(oldest);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
