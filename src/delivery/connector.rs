//! The hyper clients (and their connection pools) toward the endpoint: TCP and TLS connector
//! (rustls configuration from [`super::tls`], ALPN for HTTP/2, optional fixed server name), or
//! a Unix domain socket (`delivery.unix_socket`, a small connector of our own: a crate such as
//! `hyperlocal` would hex-encode the socket path into the URL's host, and the URL's host is the
//! `Host` header the application sees); keep-alive and idle timeouts. Built at start and again
//! when a TLS file changes.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::UnixStream;

use super::tls;
use crate::config::{ConfigError, Endpoint};

/// The pooled client toward the network (TCP, TLS); cloning it shares the pool.
pub type NetworkClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The endpoint's pooled clients: deliveries go over the Unix socket when one is configured,
/// an OAuth2 token endpoint always over the network.
pub struct Pool {
    network: NetworkClient,
    unix: Option<Client<UnixConnector, Full<Bytes>>>,
}

impl Pool {
    /// Sends a delivery request to the endpoint.
    pub fn request(&self, request: Request<Full<Bytes>>) -> ResponseFuture {
        match &self.unix {
            Some(unix) => unix.request(request),
            None => self.network.request(request),
        }
    }

    /// The client for other hosts (the OAuth2 token endpoint).
    pub fn network(&self) -> &NetworkClient {
        &self.network
    }
}

/// A client (and connection pool) with the TLS configuration read from the files now.
pub fn pool(config: &Endpoint) -> Result<Pool, ConfigError> {
    let unix = config.unix_socket.as_deref().map(|path| {
        client(config).build(UnixConnector {
            path: Arc::from(path),
            timeout: config.timeout,
        })
    });
    Ok(Pool {
        network: network(config)?,
        unix,
    })
}

fn client(config: &Endpoint) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .http2_only(config.http2_prior_knowledge);
    builder
}

fn network(config: &Endpoint) -> Result<NetworkClient, ConfigError> {
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
    Ok(client(config).build(tls))
}

/// Connects every request to one Unix domain socket, whatever the URL's host (which still
/// names the `Host` header and the pool's key).
#[derive(Clone)]
pub struct UnixConnector {
    path: Arc<Path>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for UnixConnector {
    type Response = UnixIo;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<UnixIo, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (path, timeout) = (Arc::clone(&self.path), self.timeout);
        Box::pin(async move {
            // The error names the socket: "no such file" alone would not say which file.
            let failed = |kind, reason: &dyn std::fmt::Display| {
                std::io::Error::new(kind, format!("unix socket {}: {reason}", path.display()))
            };
            match tokio::time::timeout(timeout, UnixStream::connect(&*path)).await {
                Ok(Ok(stream)) => Ok(UnixIo(TokioIo::new(stream))),
                Ok(Err(error)) => Err(failed(error.kind(), &error)),
                Err(_) => Err(failed(std::io::ErrorKind::TimedOut, &"connect timed out")),
            }
        })
    }
}

/// A connection over the Unix socket, as hyper reads and writes it.
pub struct UnixIo(TokioIo<UnixStream>);

impl Connection for UnixIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for UnixIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UnixIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
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

    #[tokio::test]
    async fn a_missing_unix_socket_is_named_in_the_error() {
        use tower_service::Service;
        let path = std::env::temp_dir().join("kws-no-such-dir/app.sock");
        let mut connector = UnixConnector {
            path: Arc::from(path.as_path()),
            timeout: Duration::from_secs(5),
        };
        let Err(error) = connector.call(Uri::from_static("http://app/")).await else {
            panic!("connected to a socket that does not exist");
        };
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        assert!(
            error.to_string().contains(&*path.to_string_lossy()),
            "{error}"
        );
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
