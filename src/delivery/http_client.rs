//! The one pooled HTTP client and a single delivery attempt: request plus response body under
//! one timeout, the body drained so the keep-alive connection is reused, redirects not followed.
//! The client adds `delivery.auth` credentials to each request (with OAuth2, a 401 fetches a
//! new token and repeats the request once), and is rebuilt (new TLS configuration, new
//! connection pool) when a `delivery.tls` file changes on disk: requests in flight finish on
//! the old connections, later ones connect with the new files.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::Request;
use http_body_util::{BodyExt, Full};

use super::auth::Auth;
use super::connector::{describe_error, pool, Pool};
use super::retry::AttemptOutcome;
use super::watched::{Change, WatchedFiles, CHECK_INTERVAL};
use super::{tls, Transport};
use crate::config::{ConfigError, Endpoint};
use crate::ops::events::{self, CredentialSource};
use crate::ops::Metrics;

/// Response bodies larger than this are not read to the end (the connection is dropped).
const MAX_DRAINED_BODY: usize = 1 << 20;
/// A batch answer's body is read for per-entry results up to this size (10,000 entries of
/// long ids fit); a larger body counts as a plain 2xx.
const MAX_RESULTS_BODY: usize = 4 << 20;

/// A pooled keep-alive client for the endpoint (HTTP/1.1, HTTP/2 by ALPN or prior knowledge).
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    /// Behind an `Arc` so a request takes one reference count, not a clone of the client's
    /// several inner handles.
    pool: RwLock<Arc<Pool>>,
    endpoint: Endpoint,
    /// The `delivery.tls` files, when there are any to watch.
    tls_files: Option<WatchedFiles>,
    auth: Auth,
    metrics: Metrics,
}

impl HttpClient {
    /// Reads the TLS and auth files (an error names the key: exit 64 at start-up). Idle
    /// connections are kept without a count limit (concurrency is the in-flight cap times the
    /// assigned partitions, unknown up front) and closed after 30 s unused.
    pub fn new(endpoint: &Endpoint, metrics: Metrics) -> Result<Self, ConfigError> {
        // Fingerprint first, read second: a change in between is seen at the next look.
        let files = endpoint.tls.files();
        let tls_files = (!files.is_empty()).then(|| {
            WatchedFiles::new(
                files.into_iter().map(|(_, path)| path).collect(),
                CHECK_INTERVAL,
            )
        });
        let pool = pool(endpoint)?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool: RwLock::new(Arc::new(pool)),
                endpoint: endpoint.clone(),
                tls_files,
                auth: Auth::new(&endpoint.auth, &metrics)?,
                metrics,
            }),
        })
    }

    /// Reads and checks every file the client needs, without connecting (`--check-config`).
    pub fn check(endpoint: &Endpoint) -> Result<(), ConfigError> {
        tls::client_config(&endpoint.tls)?;
        Auth::new(&endpoint.auth, &Metrics::new())?;
        Ok(())
    }

    /// The pool to send with, rebuilt first if a TLS file changed. A change that cannot be
    /// loaded (a rotation half written, a key not matching) keeps the previous configuration
    /// and is reported once.
    fn pool(&self) -> Arc<Pool> {
        if let Some(watched) = &self.shared.tls_files {
            if let Change::Changed(token) = watched.poll() {
                match pool(&self.shared.endpoint) {
                    Ok(pool) => {
                        if let Ok(mut current) = self.shared.pool.write() {
                            *current = Arc::new(pool);
                        }
                        watched.loaded(token);
                        events::credentials_reloaded(
                            &self.shared.metrics,
                            CredentialSource::TlsFiles,
                            Ok(()),
                        );
                    }
                    Err(error) => {
                        watched.failed(token);
                        events::credentials_reloaded(
                            &self.shared.metrics,
                            CredentialSource::TlsFiles,
                            Err(&error.to_string()),
                        );
                    }
                }
            }
        }
        match self.shared.pool.read() {
            Ok(pool) => Arc::clone(&pool),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl Transport for HttpClient {
    /// Sends one attempt and reads the answer, all within `timeout` (an OAuth2 token fetch
    /// and the one repeat after a 401 included).
    async fn send(&self, request: Request<Full<Bytes>>, timeout: Duration) -> AttemptOutcome {
        self.attempt(request, timeout, 0).await.0
    }

    async fn send_for_body(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> (AttemptOutcome, Bytes) {
        self.attempt(request, timeout, MAX_RESULTS_BODY).await
    }
}

impl HttpClient {
    /// One attempt; a 2xx answer's body is kept when it is at most `keep` bytes.
    async fn attempt(
        &self,
        mut request: Request<Full<Bytes>>,
        timeout: Duration,
        keep: usize,
    ) -> (AttemptOutcome, Bytes) {
        let pool = self.pool();
        let attempt = async {
            let Auth::OAuth2(oauth2) = &self.shared.auth else {
                self.shared.auth.apply(request.headers_mut());
                return exchange(&pool, request, keep).await;
            };
            let token = oauth2.token(&pool, None).await?;
            let repeat = copy(&request);
            request.headers_mut().insert(AUTHORIZATION, token.value);
            let answer = exchange(&pool, request, keep).await?;
            if answer.0.status() != Some(401) {
                return Ok(answer);
            }
            // The token was revoked or expired early: one new token, one more try; a second
            // 401 goes to the retry policy like any other answer.
            let fresh = oauth2.token(&pool, Some(token.generation)).await?;
            let mut repeat = repeat;
            repeat.headers_mut().insert(AUTHORIZATION, fresh.value);
            exchange(&pool, repeat, keep).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => (AttemptOutcome::Timeout, Bytes::new()),
            Ok(Err(reason)) => (AttemptOutcome::Connection(reason), Bytes::new()),
            Ok(Ok(answer)) => answer,
        }
    }
}

/// One request and its answer; the body is drained so the connection is reused. A 2xx body
/// of at most `keep` bytes is returned (a larger one is not read to the end and returned
/// empty); a 2xx body that breaks off while kept is `BadResults` (its results are unknown).
async fn exchange(
    pool: &Pool,
    request: Request<Full<Bytes>>,
    keep: usize,
) -> Result<(AttemptOutcome, Bytes), String> {
    let response = pool.request(request).await.map_err(describe_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let keep = if (200..300).contains(&status) {
        keep
    } else {
        0
    };
    let mut kept = Vec::new();
    let mut body = response.into_body();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let data = frame.data_ref().map_or(&[][..], |data| data.as_ref());
                read += data.len();
                if read <= keep {
                    kept.extend_from_slice(data);
                } else {
                    kept.clear();
                }
                if read > MAX_DRAINED_BODY.max(keep) {
                    break;
                }
            }
            // The status is what counts; a broken body only costs the connection.
            Err(error) if keep > 0 => {
                let reason = format!("the answer's body broke off: {error}");
                return Ok((AttemptOutcome::BadResults { status, reason }, Bytes::new()));
            }
            Err(_) => break,
        }
    }
    let outcome = AttemptOutcome::Status {
        status,
        retry_after,
    };
    Ok((outcome, Bytes::from(kept)))
}

/// A copy of a request (the body is reference-counted bytes), for the repeat after a 401.
fn copy(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}
