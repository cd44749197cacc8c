//! Operating the sidecar: the admin server (`/metrics`, `/healthz`, `/readyz`), the metrics
//! registry, the events that write a log line and a metric together, health state, and the
//! log subscriber.

pub mod admin;
pub mod events;
pub mod health;
pub mod logging;
pub mod metrics;

pub use health::Health;
pub use metrics::Metrics;
