//! Default values of the config keys, in one place (the config types and `Config::new` use them).

use std::time::Duration;

use super::StatusRange;

pub(crate) fn session_timeout() -> Duration {
    Duration::from_secs(45)
}
pub(crate) fn commit_interval() -> Duration {
    Duration::from_secs(1)
}
pub(crate) fn rebalance_drain_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn memory_budget() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(64)
}
pub(crate) fn fetch_linger() -> Duration {
    Duration::ZERO
}
pub(crate) fn method() -> String {
    "POST".into()
}
pub(crate) fn timeout() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn content_type() -> String {
    "application/octet-stream".into()
}
pub(crate) fn max_in_flight() -> usize {
    64
}
pub(crate) fn initial_backoff() -> Duration {
    Duration::from_millis(100)
}
pub(crate) fn max_backoff() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn multiplier() -> f64 {
    2.0
}
pub(crate) fn retryable_statuses() -> Vec<StatusRange> {
    [(408, 408), (425, 425), (429, 429), (500, 500), (502, 599)]
        .into_iter()
        .map(|(low, high)| StatusRange { low, high })
        .collect()
}
pub(crate) fn drain_timeout() -> Duration {
    Duration::from_secs(20)
}
pub(crate) fn termination_grace_period() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn partition_metrics() -> bool {
    true
}
pub(crate) fn admin_listen() -> String {
    "0.0.0.0:9464".into()
}
pub(crate) fn log_level() -> String {
    "info".into()
}
pub(crate) fn cloudevents_source() -> String {
    "/kafka/{topic}".into()
}
pub(crate) fn cloudevents_type() -> String {
    "dev.knative.kafka.event".into()
}
pub(crate) fn batch_max_records() -> usize {
    500
}
pub(crate) fn batch_max_bytes() -> usize {
    1 << 20
}
pub(crate) fn batch_max_wait() -> Duration {
    Duration::from_millis(5)
}
pub(crate) fn concurrency_max() -> usize {
    256
}
pub(crate) fn concurrency_min() -> usize {
    1
}
pub(crate) fn latency_tolerance() -> f64 {
    2.0
}
