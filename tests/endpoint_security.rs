//! TLS and credentials toward the endpoint, end to end against a real broker and a real TLS
//! listener on port 0 (certificates made in the test): a private CA, mTLS, certificate and
//! token files rotated while the sidecar runs, and no secret in the logs at debug level.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::endpoint::Endpoint;
use common::pki::{self_signed, temp_file, Ca, Leaf, SwappedDir};
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kafka_webhook_sidecar::config::Config;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

const LONG: Duration = Duration::from_secs(60);

/// One request as the TLS endpoint saw it.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    /// The client certificate of the connection (mTLS), DER.
    client_cert: Option<CertificateDer<'static>>,
}

#[derive(Default)]
struct TlsState {
    seen: Mutex<Vec<Seen>>,
    handshake_failures: AtomicUsize,
}

/// An HTTPS endpoint on 127.0.0.1:0 answering 200 to everything, optionally requiring a
/// client certificate issued by `client_ca`. Stops when dropped.
struct TlsEndpoint {
    addr: SocketAddr,
    state: Arc<TlsState>,
    task: JoinHandle<()>,
}

impl TlsEndpoint {
    async fn start(server: &Leaf, client_ca: Option<&Ca>) -> TlsEndpoint {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(
                    rustls::pki_types::pem::PemObject::pem_slice_iter(ca.pem.as_bytes())
                        .map(|cert: Result<CertificateDer<'static>, _>| cert.expect("CA PEM")),
                );
                assert_eq!(added, 1);
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(vec![server.der.clone()], server.key_der())
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(TlsState::default());
        let task = tokio::spawn(serve(listener, acceptor, state.clone()));
        TlsEndpoint { addr, state, task }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/events", self.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn handshake_failures(&self) -> usize {
        self.state.handshake_failures.load(Ordering::SeqCst)
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<TlsState>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        connections.spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(_) => {
                    state.handshake_failures.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.clone().into_owned());
            let service = service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                let client_cert = client_cert.clone();
                async move {
                    let id = request
                        .headers()
                        .get("idempotency-key")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let _ = request.into_body().collect().await;
                    state.seen.lock().unwrap().push(Seen { id, client_cert });
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// A sidecar config at debug level (the level at which a leak would most likely show).
fn debug_config(group: &str, topic: &str, url: &str) -> Config {
    let mut config = test_config(group, topic, url);
    config.log.level = "debug".into();
    config
}

/// The committed offset of partition 0 equals `expected`, eventually.
async fn wait_committed(group: &str, topic: &str, expected: i64) {
    wait_until(
        LONG,
        lazy(|| {
            format!(
                "committed offset {expected} (now {:?})",
                committed_offsets(group, topic, 1)
            )
        }),
        || committed_offsets(group, topic, 1) == vec![expected],
    )
    .await;
}

async fn stop(mut sidecar: Sidecar) -> String {
    sidecar.sigterm();
    let status = sidecar.wait_exit(LONG).await;
    assert!(status.success(), "sidecar exited with {status}");
    sidecar.logs()
}

#[tokio::test]
async fn self_signed_endpoint_is_refused_without_ca_file_and_delivered_with_it() {
    let server = self_signed(&["127.0.0.1", "localhost"]);
    let endpoint = TlsEndpoint::start(&server, None).await;
    let topic = unique("tls-private-ca");
    let group = unique("tls-private-ca-group");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 1, 3).await;

    // Without ca_file the certificate is not trusted: handshakes fail, nothing is delivered
    // or committed, and the sidecar keeps running (in the group, retrying).
    let config = debug_config(&group, &topic, &endpoint.url());
    let mut sidecar = Sidecar::start_ready(&config).await;
    wait_until(LONG, "three refused handshakes", || {
        endpoint.handshake_failures() >= 3
    })
    .await;
    assert!(endpoint.seen().is_empty(), "a request reached the handler");
    assert!(
        committed_offsets(&group, &topic, 1)[0] <= 0,
        "committed past the first record: {:?}",
        committed_offsets(&group, &topic, 1)
    );
    assert!(
        sidecar.child.try_wait().unwrap().is_none(),
        "sidecar exited"
    );
    assert!(sidecar.is_ready());
    let logs = stop(sidecar).await;
    assert!(
        logs.to_lowercase().contains("certificate"),
        "the retry log says why: {logs}"
    );

    // With the certificate itself as ca_file, every record is delivered and committed.
    let mut config = config;
    config.delivery.tls.ca_file = Some(temp_file("server.crt", &server.cert_pem));
    let sidecar = Sidecar::start_ready(&config).await;
    wait_committed(&group, &topic, 3).await;
    let ids: std::collections::BTreeSet<String> =
        endpoint.seen().into_iter().map(|seen| seen.id).collect();
    assert_eq!(ids.len(), 3, "every record delivered");
    stop(sidecar).await;
}

#[tokio::test]
async fn mtls_needs_the_client_certificate_and_picks_up_a_rotated_one() {
    let ca = Ca::new("mesh CA");
    // The endpoint is reached by IP but its certificate names a host: server_name bridges.
    let server = ca.server(&["webhook.internal"]);
    let endpoint = TlsEndpoint::start(&server, Some(&ca)).await;
    let topic = unique("tls-mtls");
    let group = unique("tls-mtls-group");
    create_topic(&topic, 1).await;
    let producer = producer();
    produce_keyed_from(&producer, &topic, 1, 5, 0).await;

    let mut config = debug_config(&group, &topic, &endpoint.url());
    config.delivery.tls.ca_file = Some(temp_file("ca.crt", &ca.pem));
    config.delivery.tls.server_name = Some("webhook.internal".into());

    // No client certificate: the endpoint refuses every handshake.
    let sidecar = Sidecar::start_ready(&config).await;
    wait_until(LONG, "three refused handshakes", || {
        endpoint.handshake_failures() >= 3
    })
    .await;
    assert!(endpoint.seen().is_empty(), "a request reached the handler");
    assert!(committed_offsets(&group, &topic, 1)[0] <= 0);
    stop(sidecar).await;

    // With the client certificate (files behind a Kubernetes-style symlink): delivered.
    let first = ca.client("sidecar-v1");
    let mut files = SwappedDir::new(
        "client-tls",
        &[("tls.crt", &first.cert_pem), ("tls.key", &first.key_pem)],
    );
    config.delivery.tls.cert_file = Some(files.path("tls.crt"));
    config.delivery.tls.key_file = Some(files.path("tls.key"));
    let sidecar = Sidecar::start_ready(&config).await;
    wait_committed(&group, &topic, 5).await;
    assert!(endpoint
        .seen()
        .iter()
        .all(|seen| seen.client_cert.as_ref() == Some(&first.der)));

    // Rotation: both files swapped at once, as cert-manager's Secret volume does. Records
    // produced one at a time until one arrives with the new certificate; from then on every
    // request carries it, and nothing is lost.
    let second = ca.client("sidecar-v2");
    files.swap(&[("tls.crt", &second.cert_pem), ("tls.key", &second.key_pem)]);
    let mut produced = 5;
    wait_until(LONG, "a request with the rotated certificate", || {
        let seen = endpoint.seen();
        if seen
            .iter()
            .any(|seen| seen.client_cert.as_ref() == Some(&second.der))
        {
            return true;
        }
        if seen.len() >= produced {
            futures_produce(&producer, &topic, produced);
            produced += 1;
        }
        false
    })
    .await;
    let switched = endpoint.seen().len();
    produce_keyed_from(&producer, &topic, 1, 10, produced as u64).await;
    produced += 10;
    wait_committed(&group, &topic, produced as i64).await;
    let seen = endpoint.seen();
    let ids: std::collections::BTreeSet<&str> = seen.iter().map(|seen| seen.id.as_str()).collect();
    assert_eq!(ids.len(), produced, "every record delivered");
    let first_new = seen
        .iter()
        .position(|seen| seen.client_cert.as_ref() == Some(&second.der))
        .expect("a request with the new certificate");
    assert!(first_new < switched);
    assert!(
        seen[first_new..]
            .iter()
            .all(|seen| seen.client_cert.as_ref() == Some(&second.der)),
        "a request after the rotation used the old certificate"
    );

    assert_eq!(
        sidecar.metric(r#"kws_endpoint_credential_reloads_total{result="ok",source="tls_files"}"#),
        Some(1.0)
    );

    // A change that cannot be used (the new certificate with the old key, as in a rotation
    // written file by file) is refused: the loaded certificate stays in use, nothing is lost.
    files.swap(&[("tls.crt", &first.cert_pem), ("tls.key", &second.key_pem)]);
    let failed = r#"kws_endpoint_credential_reloads_total{result="error",source="tls_files"}"#;
    wait_until(LONG, "the mismatched files refused", || {
        if sidecar.metric(failed) == Some(1.0) {
            return true;
        }
        if endpoint.seen().len() >= produced {
            futures_produce(&producer, &topic, produced);
            produced += 1;
        }
        false
    })
    .await;
    produce_keyed_from(&producer, &topic, 1, 5, produced as u64).await;
    produced += 5;
    wait_committed(&group, &topic, produced as i64).await;
    let seen = endpoint.seen();
    let ids: std::collections::BTreeSet<&str> = seen.iter().map(|seen| seen.id.as_str()).collect();
    assert_eq!(ids.len(), produced, "every record delivered");
    assert!(
        seen[first_new..]
            .iter()
            .all(|seen| seen.client_cert.as_ref() == Some(&second.der)),
        "the refused files were used"
    );

    // The private keys never appear in the logs, even at debug level.
    let logs = stop(sidecar).await;
    assert!(logs.contains("Reloaded endpoint credentials"), "{logs}");
    assert!(
        logs.contains("cannot be used; keeping the previous ones"),
        "{logs}"
    );
    for key in [&first.key_pem, &second.key_pem] {
        let body_line = key.lines().nth(1).expect("a PEM body line");
        assert!(!logs.contains(body_line), "a private key is in the logs");
    }
}

/// Produces one keyed record with sequence number `seq`, without waiting for it.
fn futures_produce(producer: &rdkafka::producer::FutureProducer, topic: &str, seq: usize) {
    let body = payload("k0", seq as u64);
    let _ = producer.send_result(
        rdkafka::producer::FutureRecord::to(topic)
            .key("k0")
            .payload(&body),
    );
}

#[tokio::test]
async fn bearer_token_file_is_reread_when_it_changes() {
    const FIRST: &str = "first-token-4f1c2a9d";
    const SECOND: &str = "second-token-8e7b6d5c";
    let endpoint = Endpoint::start().await;
    let topic = unique("bearer");
    let group = unique("bearer-group");
    create_topic(&topic, 1).await;
    let producer = producer();
    produce_keyed_from(&producer, &topic, 1, 5, 0).await;

    let mut token = SwappedDir::new("token", &[("token", &format!("{FIRST}\n"))]);
    let mut config = debug_config(&group, &topic, &endpoint.url());
    config.delivery.auth.bearer_token_file = Some(token.path("token"));
    let sidecar = Sidecar::start_ready(&config).await;
    wait_committed(&group, &topic, 5).await;
    let bearer = |value: &str| format!("Bearer {value}");
    assert!(endpoint
        .requests()
        .iter()
        .all(|request| request.header("authorization") == Some(bearer(FIRST).as_str())));

    // The kubelet swaps a projected token's file; later requests carry the new token.
    token.swap(&[("token", SECOND)]);
    let mut produced = 5;
    wait_until(LONG, "a request with the new token", || {
        let requests = endpoint.requests();
        if requests
            .iter()
            .any(|request| request.header("authorization") == Some(bearer(SECOND).as_str()))
        {
            return true;
        }
        if requests.len() >= produced {
            futures_produce(&producer, &topic, produced);
            produced += 1;
        }
        false
    })
    .await;
    produce_keyed_from(&producer, &topic, 1, 10, produced as u64).await;
    produced += 10;
    wait_committed(&group, &topic, produced as i64).await;
    let requests = endpoint.requests();
    assert_eq!(endpoint.distinct_successful_ids().len(), produced);
    let first_new = requests
        .iter()
        .position(|request| request.header("authorization") == Some(bearer(SECOND).as_str()))
        .expect("a request with the new token");
    assert!(requests[first_new..]
        .iter()
        .all(|request| request.header("authorization") == Some(bearer(SECOND).as_str())));

    assert_eq!(
        sidecar.metric(
            r#"kws_endpoint_credential_reloads_total{result="ok",source="bearer_token_file"}"#
        ),
        Some(1.0)
    );
    let logs = stop(sidecar).await;
    assert!(logs.contains("DEBUG"), "the sidecar logged at debug level");
    assert!(logs.contains("Reloaded endpoint credentials"), "{logs}");
    for secret in [FIRST, SECOND] {
        assert!(!logs.contains(secret), "a token is in the logs");
    }
}

#[tokio::test]
async fn oauth2_token_is_reused_refreshed_before_expiry_and_after_a_401() {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicU64;

    use common::endpoint::Reply;

    const SECRET: &str = "client-secret-7d3f9b";
    // The token endpoint: checks the client's credentials, issues oauth-tok-1, -2, … that
    // live `lifetime` seconds.
    let issuer = Endpoint::start().await;
    let issued = Arc::new(AtomicU64::new(0));
    let lifetime = Arc::new(AtomicU64::new(3600));
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("orders-webhook:{SECRET}")
        )
    );
    {
        let (issued, lifetime, basic) = (issued.clone(), lifetime.clone(), basic.clone());
        issuer.set_handler(move |request, _| {
            let body = request.body_str();
            if request.header("authorization") != Some(basic.as_str())
                || !body.contains("grant_type=client_credentials")
                || !body.contains("scope=events.write")
            {
                return Reply::status(401).with_body(r#"{"error":"invalid_client"}"#);
            }
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::ok()
                .with_header("content-type", "application/json")
                .with_body(format!(
                    r#"{{"access_token":"oauth-tok-{n}","token_type":"Bearer","expires_in":{}}}"#,
                    lifetime.load(Ordering::SeqCst)
                ))
        });
    }
    // The webhook: 401 for a missing or revoked token.
    let endpoint = Endpoint::start().await;
    let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
    {
        let revoked = revoked.clone();
        endpoint.set_handler(move |request, _| match request.header("authorization") {
            Some(value)
                if value.starts_with("Bearer oauth-tok-")
                    && !revoked.lock().unwrap().contains(value) =>
            {
                Reply::ok()
            }
            _ => Reply::status(401),
        });
    }
    let unauthorized = || {
        endpoint
            .requests()
            .iter()
            .filter(|r| r.answered_status == Some(401))
            .count()
    };

    let topic = unique("oauth2");
    let group = unique("oauth2-group");
    create_topic(&topic, 1).await;
    let producer = producer();
    produce_keyed_from(&producer, &topic, 1, 5, 0).await;
    let mut config = debug_config(&group, &topic, &endpoint.url());
    config.delivery.auth.oauth2 = Some(kafka_webhook_sidecar::config::OAuth2Config {
        token_url: issuer.url_with_path("/oauth2/token"),
        client_id: "orders-webhook".into(),
        client_secret: kafka_webhook_sidecar::config::Secret(SECRET.into()),
        scopes: vec!["events.write".into()],
    });
    let sidecar = Sidecar::start_ready(&config).await;

    // One token serves every request.
    wait_committed(&group, &topic, 5).await;
    assert_eq!(issued.load(Ordering::SeqCst), 1, "token fetched once");
    assert_eq!(unauthorized(), 0);

    // Revoked: the first 401 fetches one new token (short-lived this time) and repeats.
    lifetime.store(5, Ordering::SeqCst);
    revoked.lock().unwrap().insert("Bearer oauth-tok-1".into());
    produce_keyed_from(&producer, &topic, 1, 5, 5).await;
    wait_committed(&group, &topic, 10).await;
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "one refresh after the 401"
    );
    assert_eq!(unauthorized(), 1, "one 401, no retry storm");

    // Expiry: oauth-tok-2 lives 5 s and is replaced before it runs out, without any 401.
    let mut produced = 10;
    wait_until(LONG, "a token refreshed before expiry", || {
        if issued.load(Ordering::SeqCst) >= 3 {
            return true;
        }
        if endpoint.successful_count() >= produced {
            futures_produce(&producer, &topic, produced);
            produced += 1;
        }
        false
    })
    .await;
    produce_keyed_from(&producer, &topic, 1, 5, produced as u64).await;
    produced += 5;
    wait_committed(&group, &topic, produced as i64).await;
    assert_eq!(unauthorized(), 1, "the expiring token was replaced in time");
    assert_eq!(endpoint.distinct_successful_ids().len(), produced);
    assert!(endpoint
        .requests()
        .iter()
        .any(|r| r.header("authorization") == Some("Bearer oauth-tok-3")));

    assert_eq!(
        sidecar.metric(r#"kws_oauth2_token_requests_total{result="ok"}"#),
        Some(issued.load(Ordering::SeqCst) as f64)
    );
    let logs = stop(sidecar).await;
    assert!(logs.contains("Fetched an OAuth2 access token"), "{logs}");
    for secret in [SECRET, "oauth-tok-", &basic[6..]] {
        assert!(!logs.contains(secret), "a secret is in the logs: {secret}");
    }
}
