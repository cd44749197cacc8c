//! The one pooled HTTP client and a single delivery attempt: request plus response body under
//! one timeout, the body drained so the keep-alive connection is reused, redirects not followed.

use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::retry::AttemptOutcome;
use super::Transport;
use crate::config::Endpoint;

/// Response bodies larger than this are not read to the end (the connection is dropped).
const MAX_DRAINED_BODY: usize = 1 << 20;

/// A pooled keep-alive client for the endpoint (HTTP/1.1, HTTP/2 by ALPN or prior knowledge).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// Idle connections are kept without a count limit (concurrency is the in-flight cap
    /// times the assigned partitions, unknown up front) and closed after 30 s unused.
    pub fn new(config: &Endpoint) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http2_only(config.http2_prior_knowledge)
            .build(tls);
        Self { client }
    }
}

impl Transport for HttpClient {
    /// Sends one attempt and reads the answer, all within `timeout`.
    async fn send(&self, request: Request<Full<Bytes>>, timeout: Duration) -> AttemptOutcome {
        let exchange = async {
            let response = self.client.request(request).await.map_err(describe_error)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let mut body = response.into_body();
            let mut read = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        read += frame.data_ref().map_or(0, Bytes::len);
                        if read > MAX_DRAINED_BODY {
                            break;
                        }
                    }
                    // The status is what counts; a broken body only costs the connection.
                    Err(_) => break,
                }
            }
            Ok::<_, String>(AttemptOutcome::Status {
                status,
                retry_after,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => AttemptOutcome::Timeout,
            Ok(Err(reason)) => AttemptOutcome::Connection(reason),
            Ok(Ok(outcome)) => outcome,
        }
    }
}

/// The error and its causes in one line. hyper's errors describe the transport (refused,
/// reset, TLS), never the request's headers, so no secret can leak through them.
fn describe_error(error: hyper_util::client::legacy::Error) -> String {
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
