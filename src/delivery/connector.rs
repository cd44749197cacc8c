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
    one_line(&error)
}

/// An error and its causes, at most 300 bytes (cut at a character boundary: a cause may name
/// a host or certificate in any script).
fn one_line(error: &dyn std::error::Error) -> String {
    const LIMIT: usize = 300;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.len() > LIMIT {
        let end = (0..=LIMIT)
            .rev()
            .find(|&end| text.is_char_boundary(end))
            .unwrap_or(0);
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failure(String, Option<Box<Failure>>);

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|cause| cause as _)
        }
    }

    #[test]
    fn describes_the_causes_within_300_bytes_at_a_character_boundary() {
        let cause = Failure("connection refused".into(), None);
        let error = Failure("client error (Connect)".into(), Some(Box::new(cause)));
        assert_eq!(
            one_line(&error),
            "client error (Connect): connection refused"
        );
        // 'é' is two bytes: byte 300 falls inside one of them.
        let long = Failure(format!("x{}", "é".repeat(200)), None);
        let text = one_line(&long);
        assert_eq!(text.len(), 299);
        assert!(text.ends_with('é'));
    }
}
