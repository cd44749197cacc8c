//! The hyper client (and its connection pool) toward the endpoint: TCP and TLS connector
//! (rustls configuration from [`super::tls`], ALPN for HTTP/2, optional fixed server name),
//! keep-alive and idle timeouts. Built at start and again when a TLS file changes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::tls;
use crate::config::{ConfigError, Endpoint};

/// The pooled client; cloning it shares the pool.
pub type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client (and connection pool) with the TLS configuration read from the files now.
pub fn pool(config: &Endpoint) -> Result<Pool, ConfigError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls::client_config(&config.tls)?)
        .https_or_http();
    if let Some(name) = &config.tls.server_name {
        builder = builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone()));
    }
    let tls = builder.enable_http1().enable_http2().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .http2_only(config.http2_prior_knowledge)
        .build(tls))
}

/// The error and its causes in one line. hyper's errors describe the transport (refused,
/// reset, TLS), never the request's headers, so no secret can leak through them.
pub fn describe_error(error: hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.truncate(300);
    text
}
