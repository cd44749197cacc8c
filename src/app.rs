//! Wires the stages together and runs until shutdown: admin server, delivery (HTTP client,
//! failure policy), the consumer with its partition workers and pump; then the shutdown
//! sequence of [`crate::lifecycle::shutdown`].

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::budget::{self, BufferShare};
use crate::config::{ConcurrencySettings, KafkaConfig, RouteSettings, Settings};
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
    // One consumer per consumer group: the sidecar's, and one for each group a route names.
    let members = members(&settings);
    let healths: Vec<Arc<Health>> = members
        .iter()
        .map(|_| Arc::new(Health::new(settings.kafka.session_timeout)))
        .collect();
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        metrics.clone(),
        healths.clone().into(),
        admin_stop.clone(),
    ));

    let mut running = Vec::with_capacity(members.len());
    for ((kafka, member_routes), health) in members.into_iter().zip(healths) {
        let mut routes = Vec::with_capacity(member_routes.len());
        let sharing = member_routes.len();
        for route in member_routes {
            let route_metrics = if routed {
                metrics.for_route(&route.name)
            } else {
                metrics.clone()
            };
            routes.push(self::route(route, &kafka, sharing, route_metrics)?);
        }
        running.push(start(kafka, routes, &metrics, health, &settings).await?);
    }

    shutdown.await;
    let exit = shutdown::shutdown_all(
        running,
        settings.shutdown.drain_timeout,
        settings.shutdown.hard_deadline(),
    )
    .await;
    admin_stop.cancel();
    let _ = admin.await;
    Ok(exit)
}

/// The consumers to run: the sidecar's group (`kafka.group_id`) with the routes that name no
/// group, then one per group that routes name, each with the routes of that group, the topics
/// they read, and an equal share of `kafka.memory_budget`.
fn members(settings: &Settings) -> Vec<(KafkaConfig, Vec<&RouteSettings>)> {
    let mut groups: Vec<(Option<&str>, Vec<&RouteSettings>)> = Vec::new();
    for route in &settings.routes {
        let group = route.group_id.as_deref();
        match groups.iter_mut().find(|(known, _)| *known == group) {
            Some((_, routes)) => routes.push(route),
            None => groups.push((group, vec![route])),
        }
    }
    let share = settings.kafka.memory_budget.as_u64() / groups.len().max(1) as u64;
    groups
        .into_iter()
        .map(|(group, routes)| {
            let mut kafka = settings.kafka.clone();
            if let Some(group) = group {
                kafka.group_id = group.to_string();
            }
            kafka.topics = settings
                .kafka
                .topics
                .iter()
                .filter(|topic| routes.iter().any(|route| route.topics.contains(topic)))
                .cloned()
                .collect();
            kafka.memory_budget = bytesize::ByteSize::b(share);
            (kafka, routes)
        })
        .collect()
}

/// Creates one consumer of `kafka` for `routes` and starts its pump and position look-up.
async fn start(
    kafka: KafkaConfig,
    routes: Vec<Route>,
    metrics: &Metrics,
    health: Arc<Health>,
    settings: &Settings,
) -> Result<Running, Error> {
    let subscribed = {
        let kafka = kafka.clone();
        let topics = kafka.topics.len();
        tokio::task::spawn_blocking(move || kafka::subscribed_partitions(&kafka))
            .await
            .unwrap_or(topics)
    };
    let names: Vec<Arc<str>> = routes
        .iter()
        .map(|route| route.matching.name.clone())
        .collect();
    let consumer = kafka::create(&kafka, routes, metrics.clone(), health.clone(), subscribed)?;
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
        group_id = %kafka.group_id,
        topics = ?kafka.topics,
        routes = ?names,
        ordering = ?settings.delivery.ordering,
        in_flight_cap = settings.delivery.in_flight_cap,
        "Subscribed; joining the consumer group"
    );
    Ok(Running {
        consumer,
        pump,
        pump_stop,
        closed,
        positions,
        positions_stop,
        health,
        metrics: metrics.clone(),
    })
}

/// A route's delivery (HTTP client, request template, retry, failure policy, flow control)
/// and its partition workers' settings. Without `delivery.concurrency` the route's requests
/// in flight are limited to what its part of the member's budget pays for (the member's
/// `sharing` routes part it equally).
fn route(
    route: &RouteSettings,
    kafka: &KafkaConfig,
    sharing: usize,
    metrics: Metrics,
) -> Result<Route, Error> {
    let delivery = &route.delivery;
    let mut flow = delivery.flow.clone();
    if flow.concurrency.is_none() {
        let budget = kafka.memory_budget.as_u64() / sharing.max(1) as u64;
        let limit = budget::requests::requests_within(budget);
        info!(
            route = %route.name,
            requests = limit,
            "delivery.concurrency is not set: requests in flight are limited by kafka.memory_budget"
        );
        flow.concurrency = Some(ConcurrencySettings::Fixed(limit));
    }
    let deliverer = Arc::new(Deliverer {
        transport: HttpClient::new(&delivery.endpoint, metrics.clone())?,
        template: RequestTemplate::new(delivery),
        timeout: delivery.endpoint.timeout,
        retry: delivery.retry.clone(),
        on_failure: kafka::dead_letter::on_failure(&delivery.on_failure, kafka)?,
        metrics: metrics.clone(),
        jitter: deliverer::random_jitter,
        flow: Flow::new(&flow, &metrics),
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
        buffer: BufferShare::new(kafka.memory_budget.as_u64(), buffer_bytes),
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
