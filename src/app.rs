//! Wires the stages together and runs until shutdown: admin server, delivery (HTTP client,
//! failure policy), the consumer with its partition workers and pump; then the shutdown
//! sequence of [`crate::lifecycle::shutdown`].

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::budget::BufferShare;
use crate::config::{RouteSettings, Settings};
use crate::delivery::flow::Flow;
use crate::delivery::{deliverer, Deliverer, HttpClient};
pub use crate::error::Error;
use crate::format::RequestTemplate;
use crate::kafka;
use crate::lifecycle::shutdown::{self, Running};
use crate::lifecycle::Exit;
use crate::ops::{admin, Health, Metrics};
use crate::partition::WorkerSettings;
use crate::routing::{Route, RouteMatch};

/// Bytes a partition may hold in its buffer and in flight before it stops taking records, at
/// most (less when the memory budget's share for each assigned partition is smaller).
const PARTITION_BUFFER_BYTES: usize = 4 << 20;

/// Binds the admin server's address (before joining the group, so a port clash fails fast).
pub async fn bind_admin(settings: &Settings) -> Result<TcpListener, Error> {
    admin::bind(settings.admin_listen)
        .await
        .map_err(|source| Error::AdminBind {
            addr: settings.admin_listen,
            source,
        })
}

/// Runs the sidecar, serving the admin endpoints on `admin_listener`, until `shutdown`
/// completes; then drains, commits and leaves the group within
/// `termination_grace_period − 1 s`. `shutdown` is a parameter so `main` (signals) and tests
/// (any future) decide what triggers it.
pub async fn run(
    settings: Settings,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<Exit, Error> {
    // Without `routes:` (one route taking everything) the metrics keep their labels of old;
    // with routes, every delivery metric carries a `route` label.
    let routed =
        settings.routes.len() > 1 || !settings.routes.iter().all(|route| route.takes_everything());
    let metrics = if routed {
        Metrics::for_routes()
    } else {
        Metrics::new()
    };
    let metrics = if settings.partition_metrics {
        metrics
    } else {
        metrics.per_topic()
    };
    let health = Arc::new(Health::new(settings.kafka.session_timeout));
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        metrics.clone(),
        health.clone(),
        admin_stop.clone(),
    ));

    let mut routes = Vec::with_capacity(settings.routes.len());
    for route in &settings.routes {
        let route_metrics = if routed {
            metrics.for_route(&route.name)
        } else {
            metrics.clone()
        };
        routes.push(self::route(route, &settings, route_metrics)?);
    }
    let subscribed = {
        let kafka = settings.kafka.clone();
        tokio::task::spawn_blocking(move || kafka::subscribed_partitions(&kafka))
            .await
            .unwrap_or(settings.kafka.topics.len())
    };
    let consumer = kafka::create(
        &settings.kafka,
        routes,
        metrics.clone(),
        health.clone(),
        subscribed,
    )?;
    let positions_stop = CancellationToken::new();
    let positions = tokio::spawn(kafka::follow_positions(
        Arc::downgrade(&consumer),
        positions_stop.clone(),
    ));
    let pump_stop = CancellationToken::new();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    let pump = kafka::pump::spawn(
        consumer.clone(),
        health.clone(),
        pump_stop.clone(),
        closed_tx,
    )
    .map_err(Error::Thread)?;
    info!(
        group_id = %settings.kafka.group_id,
        topics = ?settings.kafka.topics,
        routes = ?settings.routes.iter().map(|route| &*route.name).collect::<Vec<_>>(),
        ordering = ?settings.delivery.ordering,
        in_flight_cap = settings.delivery.in_flight_cap,
        "Subscribed; joining the consumer group"
    );

    shutdown.await;
    let running = Running {
        consumer,
        pump,
        pump_stop,
        closed,
        positions,
        positions_stop,
        health,
        metrics,
    };
    let exit = shutdown::shutdown(
        running,
        settings.shutdown.drain_timeout,
        settings.shutdown.hard_deadline(),
    )
    .await;
    admin_stop.cancel();
    let _ = admin.await;
    Ok(exit)
}

/// A route's delivery (HTTP client, request template, retry, failure policy, flow control)
/// and its partition workers' settings.
fn route(route: &RouteSettings, settings: &Settings, metrics: Metrics) -> Result<Route, Error> {
    let delivery = &route.delivery;
    let deliverer = Arc::new(Deliverer {
        transport: HttpClient::new(&delivery.endpoint, metrics.clone())?,
        template: RequestTemplate::new(delivery),
        timeout: delivery.endpoint.timeout,
        retry: delivery.retry.clone(),
        on_failure: kafka::dead_letter::on_failure(&delivery.on_failure, &settings.kafka)?,
        metrics: metrics.clone(),
        jitter: deliverer::random_jitter,
        flow: Flow::new(&delivery.flow, &metrics),
    });
    // With batching the buffer holds two full batches (records and bodies), so one fills
    // while one is in flight.
    let (buffer_records, buffer_bytes) = match delivery.batch {
        None => ((delivery.in_flight_cap * 2).max(8), PARTITION_BUFFER_BYTES),
        Some(batch) => (2 * batch.max_records, 2 * batch.max_bytes),
    };
    let worker_settings = Arc::new(WorkerSettings {
        ordering: delivery.ordering,
        in_flight_cap: delivery.in_flight_cap,
        buffer_records,
        buffer: BufferShare::new(settings.kafka.memory_budget.as_u64(), buffer_bytes),
        batch: delivery.batch,
        pause_fetch_after: delivery.flow.pause_fetch_after,
    });
    Ok(Route {
        matching: RouteMatch::new(route),
        topics: route.topics.clone(),
        takes_everything: route.takes_everything(),
        deliverer,
        settings: worker_settings,
        metrics,
        cloudevents: delivery.format.cloudevents.clone(),
        content_type: delivery
            .endpoint
            .content_type
            .to_str()
            .unwrap_or("application/octet-stream")
            .to_string(),
    })
}
