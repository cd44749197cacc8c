//! The one pooled HTTP client and a single delivery attempt: request plus response body under
//! one timeout, the body drained so the keep-alive connection is reused, redirects not followed.
//! The client adds `delivery.auth` credentials to each request, and is rebuilt (new TLS
//! configuration, new connection pool) when a `delivery.tls` file changes on disk: requests in
//! flight finish on the old connections, later ones connect with the new files.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tracing::{info, warn};

use super::auth::Auth;
use super::retry::AttemptOutcome;
use super::watched::{Change, WatchedFiles, CHECK_INTERVAL};
use super::{tls, Transport};
use crate::config::{ConfigError, Endpoint};

/// Response bodies larger than this are not read to the end (the connection is dropped).
const MAX_DRAINED_BODY: usize = 1 << 20;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled keep-alive client for the endpoint (HTTP/1.1, HTTP/2 by ALPN or prior knowledge).
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    pool: RwLock<Pool>,
    endpoint: Endpoint,
    /// The `delivery.tls` files, when there are any to watch.
    tls_files: Option<WatchedFiles>,
    auth: Auth,
}

impl HttpClient {
    /// Reads the TLS and auth files (an error names the key: exit 64 at start-up). Idle
    /// connections are kept without a count limit (concurrency is the in-flight cap times the
    /// assigned partitions, unknown up front) and closed after 30 s unused.
    pub fn new(endpoint: &Endpoint) -> Result<Self, ConfigError> {
        let pool = pool(endpoint)?;
        let files = endpoint.tls.files();
        let tls_files = (!files.is_empty()).then(|| {
            WatchedFiles::new(
                files.into_iter().map(|(_, path)| path).collect(),
                CHECK_INTERVAL,
            )
        });
        Ok(Self {
            shared: Arc::new(Shared {
                pool: RwLock::new(pool),
                endpoint: endpoint.clone(),
                tls_files,
                auth: Auth::new(&endpoint.auth)?,
            }),
        })
    }

    /// Reads and checks every file the client needs, without connecting (`--check-config`).
    pub fn check(endpoint: &Endpoint) -> Result<(), ConfigError> {
        tls::client_config(&endpoint.tls)?;
        Auth::new(&endpoint.auth)?;
        Ok(())
    }

    /// The pool to send with, rebuilt first if a TLS file changed. A change that cannot be
    /// loaded (a rotation half written, a key not matching) keeps the previous configuration
    /// and is reported once.
    fn pool(&self) -> Pool {
        if let Some(Change::Changed(token)) = self.shared.tls_files.as_ref().map(WatchedFiles::poll)
        {
            let watched = self.shared.tls_files.as_ref().expect("polled above");
            match pool(&self.shared.endpoint) {
                Ok(pool) => {
                    if let Ok(mut current) = self.shared.pool.write() {
                        *current = pool;
                    }
                    watched.loaded(token);
                    info!("Reloaded the endpoint TLS files; new connections use them");
                }
                Err(error) => {
                    watched.failed(token);
                    warn!(%error, "Keeping the previous endpoint TLS configuration");
                }
            }
        }
        match self.shared.pool.read() {
            Ok(pool) => pool.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A client (and connection pool) with the TLS configuration read from the files now.
fn pool(config: &Endpoint) -> Result<Pool, ConfigError> {
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

impl Transport for HttpClient {
    /// Sends one attempt and reads the answer, all within `timeout`.
    async fn send(&self, mut request: Request<Full<Bytes>>, timeout: Duration) -> AttemptOutcome {
        self.shared.auth.apply(request.headers_mut());
        let pool = self.pool();
        let exchange = async {
            let response = pool.request(request).await.map_err(describe_error)?;
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
