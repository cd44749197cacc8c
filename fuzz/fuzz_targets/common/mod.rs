//! What several fuzz targets share: splitting an input into parts, the one `Metrics` of a
//! fuzzing process, and the route matcher of a validated config. Each target uses some of it.
#![allow(dead_code)]

use std::sync::OnceLock;

use kafka_webhook_sidecar::config::Settings;
use kafka_webhook_sidecar::ops::Metrics;
use kafka_webhook_sidecar::routing::{Matcher, RouteMatch};

/// The parts of `data` between occurrences of `separator` (one part when there is none).
pub fn split<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        parts.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    parts.push(rest);
    parts
}

/// One registry for the whole run: registering the families again for every input would
/// cost more than the code under test.
pub fn metrics() -> Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new).clone()
}

/// The route matcher the sidecar builds from `settings`.
pub fn matcher(settings: &Settings) -> Matcher {
    Matcher::new(
        settings.routes.iter().map(RouteMatch::new).collect(),
        settings.delivery.format.cloudevents.clone(),
        "application/json".into(),
        metrics(),
    )
}
