//! Scriptable HTTP endpoint for integration tests.
//!
//! A real HTTP server (hyper 1.x, HTTP/1.1 keep-alive and h2c prior knowledge)
//! bound on `127.0.0.1`, which records every request and answers according to
//! a scriptable handler.
//!
//! ```ignore
//! let ep = Endpoint::start().await;
//! ep.fail_first_attempts(2, 503);
//! // ... point the sidecar at ep.url() ...
//! ep.wait_for_requests(10, Duration::from_secs(10)).await;
//! ```
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::{lazy, wait_until};

/// Header carrying the record id (`{topic}-{partition}-{offset}`), identical on
/// every retry of the same record.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// One request as seen by the endpoint.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/events?x=1`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request (head + full body) arrived.
    pub at: Instant,
    /// Status actually sent back; `None` while pending, or when the request
    /// was hung / closed without an answer.
    pub answered_status: Option<u16>,
}

impl RecordedRequest {
    /// Value of a header as a string (if present and valid UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Value of the `idempotency-key` header.
    pub fn idempotency_id(&self) -> Option<&str> {
        self.header(IDEMPOTENCY_HEADER)
    }

    /// Body as (lossy) UTF-8.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON; panics with a clear message if it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not valid JSON ({e}): {:?}",
                self.body_str()
            )
        })
    }

    /// True if answered with a 2xx status.
    pub fn is_success(&self) -> bool {
        matches!(self.answered_status, Some(s) if (200..300).contains(&s))
    }
}

/// Position of a request among the requests seen so far (both 1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// How many requests carried this request's `idempotency-key` so far,
    /// this one included; 1 if the header is absent.
    pub nth_for_id: u32,
    /// How many requests the endpoint has seen so far, this one included.
    pub nth_overall: u64,
    /// Requests being handled right now, this one included.
    pub in_flight: usize,
}

#[derive(Clone, Debug)]
enum ReplyKind {
    Respond {
        status: u16,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    Hang,
    Close,
}

/// What the endpoint does with a request.
#[derive(Clone, Debug)]
pub struct Reply {
    kind: ReplyKind,
    delay: Duration,
}

impl Reply {
    /// Answer with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        assert!(
            StatusCode::from_u16(status).is_ok(),
            "Reply::status: invalid HTTP status {status}"
        );
        Reply {
            kind: ReplyKind::Respond {
                status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            delay: Duration::ZERO,
        }
    }

    /// `Reply::status(200)`.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// Never answer (until the client gives up or the server stops).
    pub fn hang() -> Self {
        Reply {
            kind: ReplyKind::Hang,
            delay: Duration::ZERO,
        }
    }

    /// Drop the connection without answering.
    pub fn close() -> Self {
        Reply {
            kind: ReplyKind::Close,
            delay: Duration::ZERO,
        }
    }

    /// Add a response header (ignored for `hang`/`close`).
    pub fn with_header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        let value = value.as_ref();
        let n = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("Reply::with_header: invalid header name {name:?}: {e}"));
        let v = HeaderValue::from_str(value).unwrap_or_else(|e| {
            panic!("Reply::with_header: invalid value {value:?} for header {name:?}: {e}")
        });
        if let ReplyKind::Respond { headers, .. } = &mut self.kind {
            headers.push((n, v));
        }
        self
    }

    /// Set the response body (ignored for `hang`/`close`).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        if let ReplyKind::Respond { body: b, .. } = &mut self.kind {
            *b = body.into();
        }
        self
    }

    /// Wait `delay` before answering (or before closing).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Handler deciding the reply for each request.
pub type Handler = Arc<dyn Fn(&RecordedRequest, Attempt) -> Reply + Send + Sync + 'static>;

#[derive(Default)]
struct State {
    /// (sequence number, request); the sequence number is `nth_overall`.
    requests: Vec<(u64, RecordedRequest)>,
    attempts_by_id: HashMap<String, u32>,
    nth_overall: u64,
}

struct Shared {
    state: Mutex<State>,
    handler: RwLock<Handler>,
    down: watch::Sender<bool>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    refused: AtomicU64,
    stopped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a test thread while holding the lock must not wedge the server.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handler(&self) -> Handler {
        self.handler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    fn set_answered(&self, seq: u64, status: u16) {
        let mut st = self.lock();
        if let Some((_, r)) = st.requests.iter_mut().rev().find(|(s, _)| *s == seq) {
            r.answered_status = Some(status);
        }
    }
}

/// Decrements the in-flight counter when the request future ends or is dropped.
struct InFlightGuard<'a>(&'a Shared);

impl<'a> InFlightGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(shared)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

type ServiceError = Box<dyn std::error::Error + Send + Sync>;

fn closed(reason: &str) -> ServiceError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        format!("endpoint: {reason}"),
    ))
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ServiceError> {
    if shared.is_down() {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return Err(closed("down"));
    }
    let _guard = InFlightGuard::new(&shared);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err(Box::new(e)),
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned()),
        headers: parts.headers,
        body,
        at: Instant::now(),
        answered_status: None,
    };
    let (seq, attempt) = {
        let mut st = shared.lock();
        st.nth_overall += 1;
        let nth_overall = st.nth_overall;
        let nth_for_id = match recorded.idempotency_id() {
            Some(id) => {
                let n = st.attempts_by_id.entry(id.to_owned()).or_insert(0);
                *n += 1;
                *n
            }
            None => 1,
        };
        st.requests.push((nth_overall, recorded.clone()));
        (
            nth_overall,
            Attempt {
                nth_for_id,
                nth_overall,
                in_flight: shared.in_flight.load(Ordering::SeqCst),
            },
        )
    };
    let handler = shared.handler();
    // A panicking handler only kills this request/connection, not the server.
    let reply = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handler(&recorded, attempt)
    })) {
        Ok(r) => r,
        Err(_) => Reply::status(500).with_body("endpoint handler panicked"),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match reply.kind {
        ReplyKind::Respond {
            status,
            headers,
            body,
        } => {
            let mut resp = Response::new(Full::new(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            for (n, v) in headers {
                resp.headers_mut().append(n, v);
            }
            shared.set_answered(seq, status);
            Ok(resp)
        }
        ReplyKind::Hang => {
            // Dropped when the client goes away or the server task is aborted
            // (connection tasks live in a JoinSet owned by the server task).
            std::future::pending::<()>().await;
            Err(closed("hang"))
        }
        ReplyKind::Close => Err(closed("close")),
    }
}

async fn serve_connection<S>(shared: Arc<Shared>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut down_rx = shared.down.subscribe();
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(svc_shared.clone(), req));
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    builder.http2().max_concurrent_streams(1024);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        // Connection errors (reset, garbage, closed by a service error) are
        // expected in tests and simply end this connection.
        _ = conn => {}
        // Going down closes established (keep-alive) connections too.
        _ = down_rx.wait_for(|d| *d) => {}
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // e.g. EMFILE under heavy load: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.is_down() {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(serve_connection(shared.clone(), stream));
    }
    // Release the port, then abort every connection (hanging requests
    // included) and wait until they are gone.
    drop(listener);
    conns.shutdown().await;
}

struct Running {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Running {
    fn spawn(shared: Arc<Shared>, listener: TcpListener) -> Running {
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(shared, listener, stop_rx));
        Running { task, stop }
    }

    async fn stop(self) {
        let Running { mut task, stop } = self;
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Scriptable HTTP endpoint; stops when dropped.
pub struct Endpoint {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<Running>>,
    /// The accept loop of [`Endpoint::serve_unix`], if started.
    unix: Mutex<Option<JoinHandle<()>>>,
}

impl Endpoint {
    /// Bind `127.0.0.1:0` and start serving (default handler: 200).
    pub async fn start() -> Endpoint {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Bind a specific address (e.g. the `addr()` of a previously shut down
    /// endpoint) and start serving with fresh state. Retries the bind for up
    /// to 5 s in case the port is still held.
    pub async fn start_on(addr: SocketAddr) -> Endpoint {
        let (down, _) = watch::channel(false);
        let default: Handler = Arc::new(|_, _| Reply::ok());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            handler: RwLock::new(default),
            down,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let listener = bind_with_retry(addr).await;
        let addr = listener
            .local_addr()
            .expect("endpoint: listener has no local address");
        let server = Running::spawn(shared.clone(), listener);
        Endpoint {
            addr,
            shared,
            server: Mutex::new(Some(server)),
            unix: Mutex::new(None),
        }
    }

    /// Also serve (the same handler and records) on a Unix domain socket bound at `path`,
    /// until the endpoint is dropped.
    pub fn serve_unix(&self, path: &std::path::Path) {
        let listener = tokio::net::UnixListener::bind(path)
            .unwrap_or_else(|error| panic!("endpoint: binding {}: {error}", path.display()));
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                conns.spawn(serve_connection(shared.clone(), stream));
            }
        });
        if let Some(previous) = self.unix.lock().unwrap().replace(task) {
            previous.abort();
        }
    }

    /// Serves one connection accepted elsewhere (a test's own listener that hands a stream
    /// over, e.g. after misbehaving on it) with this endpoint's handler and records, until the
    /// client closes it or the endpoint goes down. The caller owns the returned future.
    pub fn serve_stream<S>(&self, stream: S) -> impl std::future::Future<Output = ()> + Send
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        serve_connection(self.shared.clone(), stream)
    }

    /// Bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/events` (any path is accepted and recorded).
    pub fn url(&self) -> String {
        self.url_with_path("/events")
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url_with_path(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    // ---------------------------------------------------------------- lifecycle

    /// Stop accepting, close every connection (hanging requests included) and
    /// release the port. Recorded state is kept; `restart()` binds the same
    /// port again.
    pub async fn stop(&self) {
        let handle = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(r) = handle {
            r.stop().await;
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// Serve again on the same address after `stop()`, keeping recorded
    /// requests, attempt counters and the handler. No-op if running.
    pub async fn restart(&self) {
        if self
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let listener = bind_with_retry(self.addr).await;
        self.shared.stopped.store(false, Ordering::SeqCst);
        let h = Running::spawn(self.shared.clone(), listener);
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
    }

    /// Stop the server and wait until the port is released.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// True between `start`/`restart` and `stop`.
    pub fn is_running(&self) -> bool {
        !self.shared.stopped.load(Ordering::SeqCst)
    }

    /// While down, new connections are accepted and immediately closed,
    /// established connections are closed, and no request is answered or
    /// recorded (connection-level failure). `set_down(false)` serves again.
    pub fn set_down(&self, down: bool) {
        self.shared.down.send_replace(down);
    }

    pub fn is_down(&self) -> bool {
        self.shared.is_down()
    }

    /// Connections/requests refused because the endpoint was down.
    pub fn refused_count(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    // ---------------------------------------------------------------- behaviour

    /// Replace the handler. Applies to requests arriving from now on.
    pub fn set_handler<F>(&self, f: F)
    where
        F: Fn(&RecordedRequest, Attempt) -> Reply + Send + Sync + 'static,
    {
        *self
            .shared
            .handler
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(f);
    }

    /// Every request answers `status`.
    pub fn always(&self, status: u16) {
        let _ = Reply::status(status); // validate now, in the test's context
        self.set_handler(move |_, _| Reply::status(status));
    }

    /// The first `n` attempts of each record id answer `status`, then 200.
    pub fn fail_first_attempts(&self, n: u32, status: u16) {
        let _ = Reply::status(status);
        self.set_handler(move |_, a| {
            if a.nth_for_id <= n {
                Reply::status(status)
            } else {
                Reply::ok()
            }
        });
    }

    /// First attempt of each record id → 429 with `Retry-After: secs`, then 200.
    pub fn retry_after(&self, secs: u64) {
        self.set_handler(move |_, a| {
            if a.nth_for_id <= 1 {
                Reply::status(429).with_header("retry-after", secs.to_string())
            } else {
                Reply::ok()
            }
        });
    }

    /// Every request answers 200 after `delay`.
    pub fn slow(&self, delay: Duration) {
        self.set_handler(move |_, _| Reply::ok().after(delay));
    }

    /// First attempt of each record id never gets an answer, then 200.
    pub fn hang_first_attempt(&self) {
        self.set_handler(|_, a| {
            if a.nth_for_id <= 1 {
                Reply::hang()
            } else {
                Reply::ok()
            }
        });
    }

    /// Back to the default handler (200).
    pub fn always_ok(&self) {
        self.set_handler(|_, _| Reply::ok());
    }

    // ---------------------------------------------------------------- recording

    /// Snapshot of every recorded request, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Number of recorded requests.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Recorded requests that were answered with 2xx.
    pub fn successful_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(_, r)| r.is_success())
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Number of recorded requests answered with 2xx.
    pub fn successful_count(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(_, r)| r.is_success())
            .count()
    }

    /// Distinct `idempotency-key` values among 2xx-answered requests.
    pub fn distinct_successful_ids(&self) -> BTreeSet<String> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(_, r)| r.is_success())
            .filter_map(|(_, r)| r.idempotency_id().map(str::to_owned))
            .collect()
    }

    /// Recorded requests carrying `kws-idempotency-id: id`.
    pub fn requests_for_id(&self, id: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(_, r)| r.idempotency_id() == Some(id))
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Forget recorded requests (attempt counters and max concurrency are kept).
    pub fn clear(&self) {
        self.shared.lock().requests.clear();
    }

    /// Forget recorded requests, attempt counters, `nth_overall`, max
    /// concurrency and the refused counter.
    pub fn reset(&self) {
        {
            let mut st = self.shared.lock();
            st.requests.clear();
            st.attempts_by_id.clear();
            st.nth_overall = 0;
        }
        self.reset_max_concurrency();
        self.shared.refused.store(0, Ordering::SeqCst);
    }

    // ---------------------------------------------------------------- concurrency

    /// Requests currently being handled (body read, delay, hang included).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Highest number of simultaneously in-flight requests seen.
    pub fn max_concurrency(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Restart max-concurrency tracking from the current in-flight count.
    pub fn reset_max_concurrency(&self) {
        self.shared
            .max_in_flight
            .store(self.in_flight(), Ordering::SeqCst);
    }

    // ---------------------------------------------------------------- waiting

    /// Waits until at least `n` requests were answered with 2xx; panics after `timeout`
    /// with a summary of what the endpoint saw.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) {
        wait_until(
            timeout,
            lazy(|| format!("{n} requests were answered 2xx; {}", self.summary())),
            || self.successful_count() >= n,
        )
        .await
    }

    /// Waits until at least `n` requests were recorded (answered or not).
    pub async fn wait_for_request_count(&self, n: usize, timeout: Duration) {
        wait_until(
            timeout,
            lazy(|| format!("{n} requests were recorded; {}", self.summary())),
            || self.request_count() >= n,
        )
        .await
    }

    /// Waits until `distinct_successful_ids().len() >= n`.
    pub async fn wait_for_distinct_ids(&self, n: usize, timeout: Duration) {
        wait_until(
            timeout,
            lazy(|| format!("{n} distinct ids were answered 2xx; {}", self.summary())),
            || self.distinct_successful_ids().len() >= n,
        )
        .await
    }

    /// One-line description of what the endpoint has seen (for error messages).
    pub fn summary(&self) -> String {
        let st = self.shared.lock();
        let mut by_status: std::collections::BTreeMap<String, usize> = Default::default();
        for (_, r) in &st.requests {
            let k = r
                .answered_status
                .map_or_else(|| "unanswered".to_owned(), |s| s.to_string());
            *by_status.entry(k).or_default() += 1;
        }
        format!(
            "recorded={} by_status={:?} in_flight={} max_concurrency={} refused={} down={}",
            st.requests.len(),
            by_status,
            self.in_flight(),
            self.max_concurrency(),
            self.refused_count(),
            self.is_down(),
        )
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let handle = self
            .server
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = handle {
            // Aborting drops the JoinSet, which aborts every connection task.
            r.task.abort();
        }
        if let Some(unix) = self
            .unix
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            unix.abort();
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}; {})", self.addr, self.summary())
    }
}

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does), retrying for up to 5 s in
/// case a previous listener's port is still held.
async fn bind_with_retry(addr: SocketAddr) -> TcpListener {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    wait_until(
        Duration::from_secs(5),
        lazy(|| format!("the endpoint can bind {addr}")),
        || bind().ok(),
    )
    .await
}
