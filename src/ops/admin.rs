//! The admin HTTP server. Endpoints:
//!
//! - `GET /metrics`: Prometheus text format.
//! - `GET /healthz`: 200 while alive (the Kafka pump polls and no worker failed), else 503.
//! - `GET /readyz`: 200 once the member joined the group (owning partitions or standing by
//!   idle) and until shutdown begins, else 503.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::health::Health;
use super::metrics::Metrics;

/// Binds the admin address. Done before joining the group, so a port clash fails fast.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `stop` is cancelled; returns once every connection task has ended.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Arc<[Arc<Health>]>,
    stop: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Admin server listening");
    }
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, "Admin accept failed");
                    continue;
                }
            },
            // Reap finished connections so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.cancelled() => break,
        };
        let metrics = metrics.clone();
        let health = health.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let members: Vec<&Health> = health.iter().map(|member| &**member).collect();
                let response = route(&request, &metrics, &members);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.cancelled() => {}
            }
        });
    }
    while connections.join_next().await.is_some() {}
}

/// Answers one admin request; no socket involved, so unit tests call it directly. `health`
/// has one entry per consumer (one per consumer group): healthy and ready when each is.
pub fn route<B>(
    request: &Request<B>,
    metrics: &Metrics,
    health: &[&Health],
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" | "/livez" => match health.iter().all(|member| member.is_healthy()) {
            true => text(StatusCode::OK, "ok\n"),
            false => text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n"),
        },
        "/readyz" => match health.iter().all(|member| member.is_ready()) {
            true => text(StatusCode::OK, "ready\n"),
            false => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz, /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn get(path: &str, metrics: &Metrics, health: &Health) -> (StatusCode, String) {
        let request = Request::get(path).body(()).unwrap();
        let response = route(&request, metrics, &[health]);
        let status = response.status();
        let body = futures_body(response);
        (status, body)
    }

    fn futures_body(response: Response<Full<Bytes>>) -> String {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn readiness_follows_the_group_and_shutdown() {
        let (metrics, health) = (
            Metrics::new(),
            Health::new(std::time::Duration::from_secs(45)),
        );
        assert_eq!(
            get("/readyz", &metrics, &health).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_ready();
        assert_eq!(
            get("/readyz", &metrics, &health),
            (StatusCode::OK, "ready\n".into())
        );
        health.begin_shutdown();
        assert_eq!(
            get("/readyz", &metrics, &health).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get("/healthz", &metrics, &health).0, StatusCode::OK);
    }

    #[test]
    fn liveness_fails_after_a_worker_failure() {
        let (metrics, health) = (
            Metrics::new(),
            Health::new(std::time::Duration::from_secs(45)),
        );
        assert_eq!(
            get("/healthz", &metrics, &health),
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(get("/livez", &metrics, &health).0, StatusCode::OK);
        health.set_failed();
        assert_eq!(
            get("/healthz", &metrics, &health).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_ready();
        assert_eq!(
            get("/readyz", &metrics, &health).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let (metrics, health) = (
            Metrics::new(),
            Health::new(std::time::Duration::from_secs(45)),
        );
        metrics.assigned_partitions.set(3);
        let request = Request::get("/metrics").body(()).unwrap();
        let response = route(&request, &metrics, &[&health]);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = futures_body(response);
        assert!(
            body.contains("# TYPE kws_assigned_partitions gauge"),
            "{body}"
        );
        assert!(body.contains("kws_assigned_partitions 3"), "{body}");
    }

    #[test]
    fn unknown_paths_and_methods() {
        let (metrics, health) = (
            Metrics::new(),
            Health::new(std::time::Duration::from_secs(45)),
        );
        assert_eq!(get("/nope", &metrics, &health).0, StatusCode::NOT_FOUND);
        let post = Request::post("/metrics").body(()).unwrap();
        assert_eq!(
            route(&post, &metrics, &[&health]).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
