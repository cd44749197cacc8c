//! Issue 28: a hostile endpoint. A real TCP listener on 127.0.0.1 misbehaves with bytes
//! written by hand (response headers one byte a second, a body that never ends, 10 GiB
//! bodies, 1 MiB of headers, garbage, silence, a `Retry-After` of a year, a TLS handshake that
//! stalls) against the real sidecar binary and the real broker. Each case checks that the
//! attempt timeout holds, that the sidecar's peak RSS stays bounded, what the metrics count,
//! and that nothing is lost: once the same listener behaves (it hands its connections to the
//! recording [`Endpoint`]), every record is delivered in partition order and committed to the
//! end, or the failure policy disposed of it as documented. Cases aimed at partition 0 also
//! check that the other partitions flow meanwhile.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::checks;
use common::cluster::Kafka;
use common::endpoint::{Endpoint, Reply};
use common::pki::{temp_file, Ca};
use common::rss::RssSampler;
use common::*;
use kafka_webhook_sidecar::config::{Config, FailurePolicy, Ordering as DeliveryOrdering};
use rdkafka::producer::FutureRecord;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 10;
/// `delivery.timeout` of every case.
const TIMEOUT: Duration = Duration::from_secs(2);
/// `delivery.retry.max_backoff` of every case (also the cap on `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// What a loaded 2-core machine may add to an attempt's measured length.
const SLACK: Duration = Duration::from_millis(1500);
/// A generous bound on the sidecar's peak RSS (a debug build idles at about 30 MiB).
const RSS_BOUND_MIB: f64 = 200.0;
const LONG: Duration = Duration::from_secs(60);
/// The 10 GiB `Content-Length` of [`Behaviour::HugeBody`].
const TEN_GIB: u64 = 10 << 30;

/// What the hostile listener does with a connection; switched while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Hands the connection (with what was read of it) to the recording endpoint: 200.
    Behave,
    /// Like `Behave`, but the endpoint answers every request with `Connection: close`.
    CloseEach,
    /// Reads the request, then writes a 200's head one byte a second.
    Slowloris,
    /// Reads the request, answers `200`, `Content-Length: 1000000`, then a byte a second.
    EndlessBody,
    /// Reads the request, answers `503` with `Content-Length` 10 GiB, written as fast as the
    /// socket takes it.
    HugeBody,
    /// Reads the request, answers `503` chunked, 64 KiB chunks forever.
    EndlessChunks,
    /// Reads the request, answers `200` with 1 MiB of headers.
    HugeHeaders,
    /// Reads the request, answers bytes that are not HTTP.
    Garbage,
    /// Accepts the connection and never reads nor writes.
    Silent,
    /// Reads each request and answers `503` with `Retry-After: 31536000` (a year), keep-alive.
    RetryAfterYear,
    /// Reads the TLS ClientHello, never answers.
    TlsStall,
    /// HTTP/2 (prior knowledge): every request's stream is reset a thousand times.
    H2ResetFlood,
    /// HTTP/2: every request is answered with a thousand GOAWAY frames.
    H2GoawayFlood,
    /// HTTP/2: SETTINGS frames of 16 KiB (unknown settings, each wanting an ACK) written as
    /// fast as the socket takes them; no request is answered.
    H2SettingsFlood,
    /// HTTP/2: a response HEADERS frame continued by CONTINUATION frames forever.
    H2ContinuationFlood,
}

impl Behaviour {
    /// Whether the connection goes to the recording endpoint.
    fn behaves(self) -> bool {
        matches!(self, Self::Behave | Self::CloseEach)
    }

    /// Whether it speaks HTTP/2 (a connection of its own, every stream on it).
    fn is_h2(self) -> bool {
        matches!(
            self,
            Self::H2ResetFlood
                | Self::H2GoawayFlood
                | Self::H2SettingsFlood
                | Self::H2ContinuationFlood
        )
    }
}

/// One attempt the listener misbehaved on.
#[derive(Clone, Debug)]
struct HostileAttempt {
    /// The request's `kafka-partition` (`None` where nothing was read).
    partition: Option<i32>,
    /// When the request was read (or the connection accepted, where nothing is read).
    began: Instant,
    /// When the sidecar closed the connection, where the listener could tell.
    gave_up: Option<Instant>,
    /// Bytes of answer written before the sidecar closed the connection.
    written: u64,
}

impl HostileAttempt {
    fn took(&self) -> Option<Duration> {
        self.gave_up.map(|end| end - self.began)
    }
}

#[derive(Default)]
struct Seen {
    connections: usize,
    attempts: Vec<HostileAttempt>,
}

struct State {
    behaviour: Mutex<Behaviour>,
    /// Misbehave only toward requests of this partition (the others are served).
    target: Option<i32>,
    /// Serve TLS (when not stalling it).
    tls: Option<TlsAcceptor>,
    seen: Mutex<Seen>,
    endpoint: Endpoint,
}

impl State {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn behaviour(&self) -> Behaviour {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The behaviour toward a request of `partition`.
    fn behaviour_for(&self, partition: Option<i32>) -> Behaviour {
        match (self.behaviour(), self.target) {
            (behaviour, _) if behaviour.behaves() => behaviour,
            (_, Some(target)) if partition != Some(target) => Behaviour::CloseEach,
            (behaviour, _) => behaviour,
        }
    }

    fn begin(&self, partition: Option<i32>) -> usize {
        let mut seen = self.seen();
        seen.attempts.push(HostileAttempt {
            partition,
            began: Instant::now(),
            gave_up: None,
            written: 0,
        });
        seen.attempts.len() - 1
    }

    fn end(&self, index: usize, written: u64) {
        if let Some(attempt) = self.seen().attempts.get_mut(index) {
            attempt.gave_up = Some(Instant::now());
            attempt.written = written;
        }
    }
}

/// The misbehaving listener; stops (every connection closed) when dropped.
struct Hostile {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Hostile {
    async fn start(behaviour: Behaviour, target: Option<i32>, tls: Option<TlsAcceptor>) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            behaviour: Mutex::new(Behaviour::Behave),
            target,
            tls,
            seen: Mutex::default(),
            endpoint: Endpoint::start().await,
        });
        let task = tokio::spawn(accept(listener, state.clone()));
        let hostile = Hostile { addr, state, task };
        hostile.set(behaviour);
        hostile
    }

    fn url(&self) -> String {
        let scheme = if self.state.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/events", self.addr)
    }

    /// Switches the behaviour for connections and requests from now on. While it misbehaves,
    /// requests it serves are answered `Connection: close`, so every request of the targeted
    /// partition arrives on a connection of its own (the sidecar's pool is shared).
    fn set(&self, behaviour: Behaviour) {
        if behaviour == Behaviour::Behave {
            self.state.endpoint.always_ok();
        } else {
            self.state
                .endpoint
                .set_handler(|_, _| Reply::ok().with_header("connection", "close"));
        }
        *self
            .state
            .behaviour
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = behaviour;
    }

    fn endpoint(&self) -> &Endpoint {
        &self.state.endpoint
    }

    fn attempts(&self) -> Vec<HostileAttempt> {
        self.state.seen().attempts.clone()
    }

    fn connections(&self) -> usize {
        self.state.seen().connections
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        state.seen().connections += 1;
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(state.clone(), stream));
    }
}

async fn connection(state: Arc<State>, mut stream: TcpStream) {
    match state.behaviour() {
        Behaviour::Silent => {
            state.begin(None);
            // Held open, never read, until the listener is dropped.
            std::future::pending::<()>().await;
        }
        Behaviour::TlsStall => {
            let attempt = state.begin(None);
            let mut record_header = [0u8; 5];
            let hello = stream.read_exact(&mut record_header).await.is_ok();
            assert!(
                !hello || record_header[0] == 22,
                "not a TLS handshake record: {record_header:?}"
            );
            let (mut read, _) = stream.split();
            closed(&mut read).await;
            state.end(attempt, 0);
            return;
        }
        behaviour if behaviour.is_h2() => {
            let attempt = state.begin(None);
            let written = h2_misbehave(behaviour, stream).await;
            state.end(attempt, written);
            return;
        }
        _ => {}
    }
    if let Some(acceptor) = &state.tls {
        if let Ok(tls) = acceptor.accept(stream).await {
            state.endpoint.serve_stream(tls).await;
        }
        return;
    }
    loop {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        let partition = header(&request, "kafka-partition").and_then(|p| p.parse().ok());
        let behaviour = state.behaviour_for(partition);
        if behaviour.behaves() {
            // The endpoint reads the request again from what was read of it.
            let (read, write) = stream.into_split();
            let replayed = tokio::io::join(std::io::Cursor::new(request).chain(read), write);
            state.endpoint.serve_stream(replayed).await;
            return;
        }
        let attempt = state.begin(partition);
        let (kept, written) = misbehave(behaviour, &mut stream).await;
        if !kept {
            state.end(attempt, written);
            return;
        }
    }
}

/// Misbehaves toward one request. Returns whether the connection can carry the next request
/// (a complete answer was written), and the bytes written; otherwise it returns once the
/// sidecar closed the connection.
async fn misbehave(behaviour: Behaviour, stream: &mut TcpStream) -> (bool, u64) {
    let (mut read, mut write) = stream.split();
    let mut written = 0u64;
    let answer = async {
        match behaviour {
            Behaviour::Slowloris => {
                trickle(&mut write, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await
            }
            Behaviour::EndlessBody => {
                write
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    .await?;
                trickle(&mut write, &[b'x'; 1_000_000]).await
            }
            Behaviour::HugeBody => {
                let head = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {TEN_GIB}\r\n\r\n"
                );
                write.write_all(head.as_bytes()).await?;
                flood(&mut write, &[0u8; 64 << 10], &mut written).await
            }
            Behaviour::EndlessChunks => {
                write
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n",
                    )
                    .await?;
                let mut chunk = b"10000\r\n".to_vec();
                chunk.extend_from_slice(&[b'x'; 64 << 10]);
                chunk.extend_from_slice(b"\r\n");
                flood(&mut write, &chunk, &mut written).await
            }
            Behaviour::HugeHeaders => {
                let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
                for index in 0..1024 {
                    head.extend_from_slice(
                        format!("x-pad-{index}: {}\r\n", "p".repeat(1000)).as_bytes(),
                    );
                }
                head.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                written = head.len() as u64;
                write.write_all(&head).await
            }
            Behaviour::Garbage => {
                let garbage = b"\x00\xffSPDY/9 \x07\x08 not http at all\r\n\r\n\x1b[2J";
                written = garbage.len() as u64;
                write.write_all(garbage).await
            }
            Behaviour::RetryAfterYear => {
                write
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 31536000\r\n\
                          Content-Length: 0\r\n\r\n",
                    )
                    .await
            }
            other => {
                unreachable!("{other:?} is not answered per HTTP/1.1 request")
            }
        }
    };
    let complete = tokio::select! {
        biased;
        result = answer => result.is_ok(),
        _ = closed(&mut read) => false,
    };
    if complete && behaviour == Behaviour::RetryAfterYear {
        return (true, written);
    }
    if complete {
        // A complete answer the sidecar must refuse: wait until it closes the connection.
        closed(&mut read).await;
    }
    (false, written)
}

/// One HTTP/2 frame: 9 bytes of header, then the payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut frame = length.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

const H2_HEADERS: u8 = 0x1;
const H2_RST_STREAM: u8 = 0x3;
const H2_SETTINGS: u8 = 0x4;
const H2_GOAWAY: u8 = 0x7;
const H2_CONTINUATION: u8 = 0x9;
const H2_ACK: u8 = 0x1;
/// The largest frame payload a peer must accept (`SETTINGS_MAX_FRAME_SIZE`'s default).
const H2_MAX_FRAME: usize = 16_384;

/// Speaks just enough HTTP/2 to misbehave: the server preface, ACKs of the client's
/// SETTINGS, and the misbehaviour toward each request's HEADERS (or, for the SETTINGS flood,
/// from the start). Returns the bytes written once the sidecar closed the connection.
async fn h2_misbehave(behaviour: Behaviour, mut stream: TcpStream) -> u64 {
    let mut preface = [0u8; 24];
    if stream.read_exact(&mut preface).await.is_err() || !preface.starts_with(b"PRI * HTTP/2.0") {
        return 0;
    }
    let (mut read, mut write) = stream.split();
    let mut written = 0u64;
    if write
        .write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
        .await
        .is_err()
    {
        return 0;
    }
    // Unknown setting ids (0xff00 +), which a peer must ignore, filling a frame.
    let huge_settings: Vec<u8> = (0..H2_MAX_FRAME / 6)
        .flat_map(|index| {
            let mut setting = (0xff00u16 + (index % 256) as u16).to_be_bytes().to_vec();
            setting.extend_from_slice(&(index as u32).to_be_bytes());
            setting
        })
        .collect();
    let settings_frame = h2_frame(H2_SETTINGS, 0, 0, &huge_settings);
    if behaviour == Behaviour::H2SettingsFlood {
        let flood = async {
            while write.write_all(&settings_frame).await.is_ok() {
                written += settings_frame.len() as u64;
            }
        };
        tokio::select! {
            _ = closed(&mut read) => {}
            _ = flood => {}
        }
        return written;
    }
    loop {
        let mut header = [0u8; 9];
        if read.read_exact(&mut header).await.is_err() {
            return written;
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if read.read_exact(&mut payload).await.is_err() {
            return written;
        }
        let (kind, flags) = (header[3], header[4]);
        let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let answer: Vec<u8> = match (kind, behaviour) {
            (H2_SETTINGS, _) if flags & H2_ACK == 0 => h2_frame(H2_SETTINGS, H2_ACK, 0, &[]),
            (H2_HEADERS, Behaviour::H2ResetFlood) => (0..1000)
                .flat_map(|_| h2_frame(H2_RST_STREAM, 0, id, &2u32.to_be_bytes()))
                .collect(),
            (H2_HEADERS, Behaviour::H2GoawayFlood) => (0..1000)
                .flat_map(|_| h2_frame(H2_GOAWAY, 0, 0, &[0; 8]))
                .collect(),
            (H2_HEADERS, Behaviour::H2ContinuationFlood) => {
                // `:status: 200` (static table index 8), then literal headers forever.
                let frames = h2_frame(H2_HEADERS, 0, id, &[0x88]);
                let mut block = Vec::new();
                while block.len() + 64 < H2_MAX_FRAME {
                    block.extend_from_slice(&[0x00, 5]);
                    block.extend_from_slice(b"x-pad");
                    block.push(50);
                    block.extend_from_slice(&[b'p'; 50]);
                }
                let continuation = h2_frame(H2_CONTINUATION, 0, id, &block);
                written += frames.len() as u64;
                if write.write_all(&frames).await.is_err() {
                    return written;
                }
                loop {
                    tokio::select! {
                        result = write.write_all(&continuation) => if result.is_err() {
                            return written;
                        },
                        _ = closed(&mut read) => return written,
                    }
                    written += continuation.len() as u64;
                }
            }
            _ => continue,
        };
        written += answer.len() as u64;
        if write.write_all(&answer).await.is_err() {
            return written;
        }
    }
}

/// Writes `bytes` one a second (the misbehaviour itself, not a test waiting).
async fn trickle(write: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for byte in bytes {
        tick.tick().await;
        write.write_all(std::slice::from_ref(byte)).await?;
    }
    Ok(())
}

/// Writes `chunk` again and again until the peer stops reading (counted in `written`).
async fn flood(
    write: &mut (impl AsyncWrite + Unpin),
    chunk: &[u8],
    written: &mut u64,
) -> std::io::Result<()> {
    loop {
        write.write_all(chunk).await?;
        *written += chunk.len() as u64;
    }
}

/// Reads and discards until the peer closes the connection.
async fn closed(read: &mut (impl AsyncRead + Unpin)) {
    let mut buffer = [0u8; 4096];
    while matches!(read.read(&mut buffer).await, Ok(n) if n > 0) {}
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body); `None` once the peer closed.
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
        request.extend_from_slice(&buffer[..n]);
    };
    let length: usize = header(&request[..head_end], "content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = stream.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
        request.extend_from_slice(&buffer[..n]);
    }
    Some(request)
}

/// A header's value in a request head read by [`read_request`].
fn header(request: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(request)
        .split("\r\n\r\n")
        .next()?
        .lines()
        .skip(1)
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
}

/// A TLS acceptor for a certificate of 127.0.0.1 issued by `ca`.
fn tls_acceptor(ca: &Ca) -> TlsAcceptor {
    let server = ca.server(&["127.0.0.1"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![server.der.clone()], server.key_der())
        .expect("server certificate");
    TlsAcceptor::from(Arc::new(config))
}

/// `PER_PARTITION` records to each partition, keyed `p{partition}` (so per-key order is
/// per-partition order), in offset order.
async fn produce_per_partition(topic: &str) -> Vec<Keyed> {
    let producer = producer();
    let mut produced = Vec::new();
    for partition in 0..PARTITIONS {
        let key = format!("p{partition}");
        for seq in 0..PER_PARTITION as u64 {
            let body = payload(&key, seq);
            let record = FutureRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&body);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(error, _)| error)
                .expect("produce");
            produced.push(Keyed {
                key: key.clone(),
                seq,
            });
        }
    }
    produced
}

/// How a case ends once its misbehaviour has been seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The listener behaves again: every record delivered in partition order, committed.
    Recover,
    /// The failure policy (set by the case's config) disposed of the records it could not
    /// deliver: the committed offsets reach the end without the listener behaving.
    Disposed,
}

/// One hostile case.
struct Case {
    name: &'static str,
    behaviour: Behaviour,
    /// Misbehave only toward partition 0: the other partitions must be delivered and committed
    /// while it lasts.
    partition_zero_only: bool,
    /// The status class the sidecar counts the misbehaviour as (`kws_delivery_attempts_total`).
    class: &'static str,
    /// Attempts of that class to see before the end phase.
    attempts: usize,
    tls: bool,
    end: End,
    configure: fn(&mut Config),
}

impl Case {
    fn new(name: &'static str, behaviour: Behaviour, class: &'static str) -> Case {
        Case {
            name,
            behaviour,
            class,
            partition_zero_only: true,
            attempts: 3,
            tls: false,
            end: End::Recover,
            configure: |_| {},
        }
    }
}

/// What a case measured.
struct Report {
    topic: String,
    sidecar: Sidecar,
    hostile: Hostile,
    /// The attempts misbehaved on, when the end phase began.
    attempts: Vec<HostileAttempt>,
    /// The metrics text when the end phase began.
    metrics: String,
}

impl Report {
    /// A counter of the case's topic with one more label (`class`, `outcome`), when the end
    /// phase began.
    fn count(&self, name: &str, label: &str, value: &str) -> f64 {
        series(
            &self.metrics,
            &format!("{name}{{{label}=\"{value}\",topic=\"{}\"}}", self.topic),
        )
        .unwrap_or(0.0)
    }

    /// `kws_delivery_attempts_total` of a status class.
    fn attempts_of_class(&self, class: &str) -> f64 {
        self.count("kws_delivery_attempts_total", "class", class)
    }

    /// The mean attempt duration the sidecar measured, when the end phase began.
    fn mean_attempt(&self) -> Duration {
        let of = |suffix: &str| {
            let name = format!(
                "kws_attempt_duration_seconds_{suffix}{{topic=\"{}\"}}",
                self.topic
            );
            series(&self.metrics, &name).unwrap_or(0.0)
        };
        Duration::from_secs_f64(of("sum") / of("count").max(1.0))
    }

    /// How long the sidecar took to give up on each attempt the listener could time.
    fn give_up_times(&self) -> Vec<Duration> {
        self.attempts
            .iter()
            .filter_map(HostileAttempt::took)
            .collect()
    }

    /// Asserts every timed attempt lasted the attempt timeout (not much less, not much more).
    /// The listener starts its clock once it has read the request, which on a loaded machine
    /// can be a few hundred milliseconds after the sidecar started the attempt's (1.92 s seen).
    fn assert_timed_out_at_the_timeout(&self) {
        let times = self.give_up_times();
        assert!(!times.is_empty(), "{}: no attempt was timed", self.topic);
        for took in times {
            assert!(
                took >= TIMEOUT - Duration::from_millis(500) && took <= TIMEOUT + SLACK,
                "{}: an attempt lasted {took:?}, the timeout is {TIMEOUT:?}",
                self.topic
            );
        }
    }
}

/// Runs a case: topic and records, the listener misbehaving, the sidecar started with its RSS
/// sampled; waits for `attempts` misbehaved attempts (and, for a case aimed at partition 0,
/// for the other partitions to be delivered and committed meanwhile), then the end phase.
async fn run(case: Case) -> Report {
    let topic = unique(&format!("hostile-{}", case.name));
    let group = unique(&format!("hostile-{}-group", case.name));
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_per_partition(&topic).await;
    let ca = Ca::new("hostile CA");
    let tls = case.tls.then(|| tls_acceptor(&ca));
    let target = case.partition_zero_only.then_some(0);
    let hostile = Hostile::start(case.behaviour, target, tls).await;
    let mut config = test_config(&group, &topic, &hostile.url());
    config.delivery.timeout = TIMEOUT;
    config.delivery.retry.initial_backoff = Duration::from_millis(100);
    config.delivery.retry.max_backoff = MAX_BACKOFF;
    if case.tls {
        config.delivery.tls.ca_file = Some(temp_file("hostile-ca.crt", &ca.pem));
    }
    (case.configure)(&mut config);
    if let Some(dlq) = &config.delivery.dead_letter_topic {
        create_topic(dlq, 1).await;
    }
    let sidecar = Sidecar::start(&config);
    let rss = RssSampler::start(sidecar.child.id());
    let started = Instant::now();

    let counted = || {
        let name = format!(
            "kws_delivery_attempts_total{{class=\"{}\",topic=\"{topic}\"}}",
            case.class
        );
        sidecar.metric(&name).unwrap_or(0.0) as usize
    };
    wait_until(
        LONG,
        lazy(|| {
            format!(
                "the sidecar counts {} attempts of class {} (counted {}; the listener saw {:?})",
                case.attempts,
                case.class,
                counted(),
                hostile.attempts()
            )
        }),
        || counted() >= case.attempts,
    )
    .await;
    let end = end_offsets(&topic, PARTITIONS);
    if case.partition_zero_only {
        let others = || {
            checks::delivered(hostile.endpoint())
                .into_iter()
                .filter(|delivered| delivered.partition != 0)
                .map(|delivered| (delivered.partition, delivered.offset))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        wait_until(
            LONG,
            lazy(|| format!("partitions 1.. delivered while 0 is stuck: {}", others())),
            || others() == (PARTITIONS as usize - 1) * PER_PARTITION,
        )
        .await;
        wait_until(LONG, "partitions 1.. committed to the end", || {
            committed_offsets(&group, &topic, PARTITIONS)[1..] == end[1..]
        })
        .await;
        if case.end == End::Recover {
            let zero = checks::delivered(hostile.endpoint())
                .iter()
                .filter(|delivered| delivered.partition == 0)
                .count();
            assert_eq!(zero, 0, "partition 0 delivered through the misbehaviour");
        }
    }
    let attempts = hostile.attempts();
    let metrics = sidecar.metrics();
    let hostile_phase = started.elapsed();

    match case.end {
        End::Recover => {
            hostile.set(Behaviour::Behave);
            checks::wait_all_delivered(hostile.endpoint(), &produced, LONG).await;
            let deliveries = checks::delivered(hostile.endpoint());
            checks::assert_nothing_lost(&deliveries, &produced);
            checks::assert_partition_order(&deliveries);
        }
        End::Disposed => {}
    }
    checks::wait_committed(&Kafka::shared(), &group, &topic, &end).await;
    let (peak_rss_mib, samples) = rss.finish();
    assert!(samples > 0, "RSS was never sampled");
    let report = Report {
        topic,
        sidecar,
        hostile,
        attempts,
        metrics,
    };
    eprintln!(
        "{}: {} misbehaved attempts in {hostile_phase:.1?}, given up after {:?} \
         (sidecar's mean attempt {:.2?}), at most {} bytes written to one, {} connections; \
         attempts by class: timeout {}, connection_error {}, 5xx {}; retries {}; \
         peak RSS {peak_rss_mib:.1} MiB; done in {:.1?}",
        case.name,
        report.attempts.len(),
        report.give_up_times(),
        report.mean_attempt(),
        report.attempts.iter().map(|a| a.written).max().unwrap_or(0),
        report.hostile.connections(),
        report.attempts_of_class("timeout"),
        report.attempts_of_class("connection_error"),
        report.attempts_of_class("5xx"),
        series(
            &report.metrics,
            &format!("kws_delivery_retries_total{{topic=\"{}\"}}", report.topic)
        )
        .unwrap_or(0.0),
        started.elapsed(),
    );
    assert!(
        peak_rss_mib <= RSS_BOUND_MIB,
        "peak RSS {peak_rss_mib:.1} MiB above {RSS_BOUND_MIB} MiB"
    );
    assert!(
        report.sidecar.logs().find("panicked").is_none(),
        "the sidecar panicked:\n{}",
        report.sidecar.logs()
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_response_headers_time_out_and_are_retried() {
    let report = run(Case::new("slowloris", Behaviour::Slowloris, "timeout")).await;
    report.assert_timed_out_at_the_timeout();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_never_ends_times_out_and_is_retried() {
    let report = run(Case::new("endless-body", Behaviour::EndlessBody, "timeout")).await;
    report.assert_timed_out_at_the_timeout();
}

/// Asserts every attempt the listener timed ended on its own, well inside the timeout (the
/// sidecar stopped reading), with at most `max_written` bytes of answer written to it.
fn assert_ended_before_the_timeout(report: &Report, max_written: u64) {
    let times = report.give_up_times();
    assert!(!times.is_empty(), "no attempt was timed");
    assert!(
        times.iter().all(|took| *took < TIMEOUT),
        "an attempt lasted until the timeout: {times:?}"
    );
    let most = report.attempts.iter().map(|a| a.written).max().unwrap_or(0);
    assert!(
        most <= max_written,
        "{most} bytes of answer written to one attempt, more than {max_written}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_10_gib_body_is_not_read_to_the_end_and_the_attempt_ends() {
    let report = run(Case::new("huge-body", Behaviour::HugeBody, "5xx")).await;
    // The sidecar reads at most 1 MiB of an answer's body; what else was written sat in the
    // two sockets' buffers.
    assert_ended_before_the_timeout(&report, 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endless_chunked_body_is_not_read_to_the_end_and_the_attempt_ends() {
    let report = run(Case::new("endless-chunks", Behaviour::EndlessChunks, "5xx")).await;
    assert_ended_before_the_timeout(&report, 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mebibyte_of_response_headers_is_a_connection_error_and_retried() {
    let report = run(Case::new(
        "huge-headers",
        Behaviour::HugeHeaders,
        "connection_error",
    ))
    .await;
    assert_ended_before_the_timeout(&report, 2 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_answers_are_connection_errors_then_dead_lettered() {
    const MAX_ATTEMPTS: u32 = 3;
    let report = run(Case {
        attempts: MAX_ATTEMPTS as usize,
        end: End::Disposed,
        configure: |config| {
            config.delivery.retry.max_attempts = MAX_ATTEMPTS;
            config.delivery.on_failure = FailurePolicy::DeadLetter;
            config.delivery.dead_letter_topic = Some(format!("{}-dlq", config.kafka.topics[0]));
        },
        ..Case::new("garbage", Behaviour::Garbage, "connection_error")
    })
    .await;
    assert_ended_before_the_timeout(&report, 1 << 10);
    // Every record of partition 0 went to the dead-letter topic after its attempts; the other
    // partitions were delivered.
    let dlq = format!("{}-dlq", report.topic);
    let letters = read_dead_letters(&dlq, PER_PARTITION).await;
    let mut offsets: Vec<i64> = letters
        .iter()
        .map(|letter| {
            let header = |name: &str| letter.headers.get(name).map(String::as_str);
            assert_eq!(header("kws-original-partition"), Some("0"));
            assert_eq!(header("kws-error-attempts"), Some("3"));
            assert!(
                header("kws-error-message").is_some_and(|m| m.contains("connection error")),
                "kws-error-message: {:?}",
                header("kws-error-message")
            );
            header("kws-original-offset")
                .and_then(|offset| offset.parse().ok())
                .expect("kws-original-offset")
        })
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..PER_PARTITION as i64).collect::<Vec<_>>());
    let outcome = |value: &str| {
        report.sidecar.metric(&format!(
            "kws_deliveries_total{{outcome=\"{value}\",topic=\"{}\"}}",
            report.topic
        ))
    };
    assert_eq!(outcome("dead_lettered"), Some(PER_PARTITION as f64));
    assert_eq!(outcome("success"), Some(2.0 * PER_PARTITION as f64));
    assert_eq!(
        report.sidecar.metric(&format!(
            "kws_delivery_attempts_total{{class=\"connection_error\",topic=\"{}\"}}",
            report.topic
        )),
        Some(f64::from(MAX_ATTEMPTS) * PER_PARTITION as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_close_on_every_answer_delivers_everything_in_order() {
    let records = PARTITIONS as usize * PER_PARTITION;
    let report = run(Case {
        partition_zero_only: false,
        attempts: records,
        ..Case::new("connection-close", Behaviour::CloseEach, "2xx")
    })
    .await;
    let answered = report.hostile.endpoint().successful_count();
    assert!(answered >= records);
    assert!(
        report.hostile.connections() >= records,
        "{} connections for {records} records: an answer with `Connection: close` was not the \
         connection's last",
        report.hostile.connections()
    );
}

/// Attempts per record of the cases that end with `on_failure: drop`.
const DROP_AFTER: u32 = 2;

/// `on_failure: drop` after [`DROP_AFTER`] attempts, every record in flight at once
/// (`ordering: none`), so a case takes two timeouts, not sixty.
fn drop_after_two_attempts(config: &mut Config) {
    config.delivery.retry.max_attempts = DROP_AFTER;
    config.delivery.on_failure = FailurePolicy::Drop;
    config.delivery.ordering = DeliveryOrdering::None;
    config.delivery.max_in_flight = 64;
}

/// A case that misbehaves toward every record until `drop` disposed of them all: no record
/// reached the endpoint, each was dropped after [`DROP_AFTER`] attempts of `class`, and the
/// offsets are committed to the end (checked by [`run`]).
async fn run_until_dropped(case: Case) -> Report {
    let records = PARTITIONS as usize * PER_PARTITION;
    let report = run(Case {
        partition_zero_only: false,
        attempts: DROP_AFTER as usize * records,
        end: End::Disposed,
        ..case
    })
    .await;
    assert_eq!(report.hostile.endpoint().successful_count(), 0);
    assert_eq!(
        report.sidecar.metric(&format!(
            "kws_deliveries_total{{outcome=\"dropped\",topic=\"{}\"}}",
            report.topic
        )),
        Some(records as f64)
    );
    report
}

/// Asserts the sidecar's own mean attempt duration is the timeout (cases of timeouts only).
fn assert_mean_attempt_is_the_timeout(report: &Report) {
    let mean = report.mean_attempt();
    assert!(
        mean >= TIMEOUT - Duration::from_millis(50) && mean <= TIMEOUT + SLACK,
        "mean attempt {mean:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_never_reads_times_out_then_drop_disposes_of_every_record() {
    let report = run_until_dropped(Case {
        configure: drop_after_two_attempts,
        ..Case::new("silent", Behaviour::Silent, "timeout")
    })
    .await;
    assert_mean_attempt_is_the_timeout(&report);
    let records = PARTITIONS as usize * PER_PARTITION;
    assert!(report.hostile.connections() >= DROP_AFTER as usize * records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_of_a_year_waits_max_backoff_and_delivery_resumes() {
    let report = run(Case {
        attempts: 4,
        ..Case::new("retry-after-year", Behaviour::RetryAfterYear, "5xx")
    })
    .await;
    let began: Vec<Instant> = report
        .attempts
        .iter()
        .filter(|attempt| attempt.partition == Some(0))
        .map(|attempt| attempt.began)
        .collect();
    let gaps: Vec<Duration> = began.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert!(gaps.len() >= 3, "attempts of partition 0: {began:?}");
    assert!(
        gaps.iter()
            .all(|gap| *gap >= MAX_BACKOFF - Duration::from_millis(50)
                && *gap <= MAX_BACKOFF + SLACK),
        "waits between attempts {gaps:?}, max_backoff {MAX_BACKOFF:?}"
    );
    eprintln!("retry-after-year: waits between attempts {gaps:?}");
}

/// An HTTP/2 case: prior knowledge toward the listener, every partition affected (one
/// connection carries them all).
async fn run_h2(name: &'static str, behaviour: Behaviour, class: &'static str) -> Report {
    run(Case {
        partition_zero_only: false,
        configure: |config| config.delivery.http2_prior_knowledge = true,
        ..Case::new(name, behaviour, class)
    })
    .await
}

/// HTTP/2 with `drop` after two attempts: for misbehaviours that keep the connection open,
/// which the sidecar's pool goes on using for every attempt (see README, "Security and
/// hostile input").
fn h2_drop_after_two_attempts(config: &mut Config) {
    drop_after_two_attempts(config);
    config.delivery.http2_prior_knowledge = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2_reset_stream_flood_is_a_connection_error_then_dropped() {
    let report = run_until_dropped(Case {
        configure: h2_drop_after_two_attempts,
        ..Case::new("h2-reset", Behaviour::H2ResetFlood, "connection_error")
    })
    .await;
    assert_eq!(
        report.hostile.connections(),
        1,
        "one connection carries every stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2_goaway_flood_is_a_connection_error_and_retried() {
    let report = run_h2("h2-goaway", Behaviour::H2GoawayFlood, "connection_error").await;
    assert_ended_before_the_timeout(&report, 1 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2_settings_flood_times_out_with_memory_bounded_then_dropped() {
    let report = run_until_dropped(Case {
        configure: h2_drop_after_two_attempts,
        ..Case::new("h2-settings", Behaviour::H2SettingsFlood, "timeout")
    })
    .await;
    assert_mean_attempt_is_the_timeout(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2_continuation_flood_ends_the_attempt_with_memory_bounded() {
    let report = run_h2(
        "h2-continuation",
        Behaviour::H2ContinuationFlood,
        "connection_error",
    )
    .await;
    assert_ended_before_the_timeout(&report, 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_handshake_that_stalls_times_out_and_is_retried() {
    let report = run(Case {
        partition_zero_only: false,
        tls: true,
        ..Case::new("tls-stall", Behaviour::TlsStall, "timeout")
    })
    .await;
    report.assert_timed_out_at_the_timeout();
}
