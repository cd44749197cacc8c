//! Self-test of the scriptable test endpoint in `tests/common/endpoint.rs`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use common::endpoint::{Endpoint, Reply, IDEMPOTENCY_HEADER};
use common::wait_until;

type TestClient = Client<HttpConnector, Full<Bytes>>;

const WAIT: Duration = Duration::from_secs(5);

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

async fn post(
    client: &TestClient,
    url: &str,
    id: Option<&str>,
    body: &'static str,
) -> Result<Answer, String> {
    let mut req = Request::post(url).header("content-type", "application/json");
    if let Some(id) = id {
        req = req.header(IDEMPOTENCY_HEADER, id);
    }
    let req = req
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("valid request");
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_200_records_request() {
    let ep = Endpoint::start().await;
    assert!(ep.url().starts_with("http://127.0.0.1:"));
    assert!(ep.url().ends_with("/events"));
    let c = client();
    let url = ep.url_with_path("/hook/x?q=1");
    let a = post(&c, &url, Some("t-0-5"), r#"{"k":1}"#).await.unwrap();
    assert_eq!(a.status, 200);
    assert!(a.body.is_empty());

    ep.wait_for_requests(1, WAIT).await;
    let reqs = ep.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook/x?q=1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.idempotency_id(), Some("t-0-5"));
    assert_eq!(r.body_json(), serde_json::json!({"k": 1}));
    assert_eq!(r.answered_status, Some(200));
    assert_eq!(ep.request_count(), 1);
    assert_eq!(ep.successful_requests().len(), 1);

    // Custom reply: header + body.
    ep.set_handler(|_, _| {
        Reply::status(201)
            .with_header("x-reply", "yes")
            .with_body("hello")
    });
    let a = post(&c, &ep.url(), None, "{}").await.unwrap();
    assert_eq!(a.status, 201);
    assert_eq!(a.headers.get("x-reply").unwrap(), "yes");
    assert_eq!(&a.body[..], b"hello");

    // wait_for_requests reports a timeout as a failure (a panic naming what it waited for).
    // It runs on a thread of its own so that the panic can be caught here.
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime")
                    .block_on(ep.wait_for_requests(3, Duration::from_millis(100)))
            })
            .join()
    });
    let panic = outcome.expect_err("waiting for 3 of 2 requests must time out");
    let err = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(err.contains("timed out"), "{err}");

    ep.clear();
    assert_eq!(ep.request_count(), 0);
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_first_attempts_counts_per_id() {
    let ep = Endpoint::start().await;
    ep.fail_first_attempts(2, 503);
    let c = client();
    let url = ep.url();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post(&c, &url, Some("t-0-1"), "{}").await.unwrap().status);
    }
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(
        post(&c, &url, Some("t-0-2"), "{}").await.unwrap().status,
        503
    );
    // No id header: always attempt 1.
    assert_eq!(post(&c, &url, None, "{}").await.unwrap().status, 503);

    assert_eq!(ep.request_count(), 5);
    assert_eq!(ep.successful_requests().len(), 1);
    let ids: Vec<String> = ep.distinct_successful_ids().into_iter().collect();
    assert_eq!(ids, vec!["t-0-1".to_string()]);
    assert_eq!(ep.requests_for_id("t-0-1").len(), 3);

    // Handler sees the attempt numbers.
    ep.set_handler(|_, a| {
        Reply::status(200).with_body(format!("{}/{}", a.nth_for_id, a.nth_overall))
    });
    let a = post(&c, &url, Some("t-0-2"), "{}").await.unwrap();
    assert_eq!(&a.body[..], b"2/6");

    ep.always(500);
    assert_eq!(
        post(&c, &url, Some("t-0-9"), "{}").await.unwrap().status,
        500
    );
    ep.reset();
    ep.always_ok();
    let a = post(&c, &url, Some("t-0-1"), "{}").await;
    assert_eq!(a.unwrap().status, 200);
    assert_eq!(ep.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_then_ok() {
    let ep = Endpoint::start().await;
    ep.retry_after(7);
    let c = client();
    let a = post(&c, &ep.url(), Some("t-1-0"), "{}").await.unwrap();
    assert_eq!(a.status, 429);
    assert_eq!(a.headers.get("retry-after").unwrap(), "7");
    let a = post(&c, &ep.url(), Some("t-1-0"), "{}").await.unwrap();
    assert_eq!(a.status, 200);
    assert!(a.headers.get("retry-after").is_none());
    let reqs = ep.requests();
    assert_eq!(reqs[0].answered_status, Some(429));
    assert_eq!(reqs[1].answered_status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_delays_answer() {
    let ep = Endpoint::start().await;
    ep.slow(Duration::from_millis(300));
    let c = client();
    let t0 = Instant::now();
    let a = post(&c, &ep.url(), None, "{}").await.unwrap();
    let took = t0.elapsed();
    assert_eq!(a.status, 200);
    assert!(took >= Duration::from_millis(250), "took {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_until_client_gives_up_and_close() {
    let ep = Endpoint::start().await;
    ep.hang_first_attempt();
    let c = client();
    let url = ep.url();
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        post(&c, &url, Some("t-2-0"), "{}"),
    )
    .await;
    assert!(r.is_err(), "hanging request must not be answered");
    // The client giving up releases the hanging request on the server side.
    wait_until(WAIT, "the hanging request is released", || {
        ep.in_flight() == 0
    })
    .await;
    // Recorded on arrival even though never answered.
    assert_eq!(ep.request_count(), 1);
    assert_eq!(ep.requests()[0].answered_status, None);
    assert_eq!(ep.successful_requests().len(), 0);

    let a = post(&c, &url, Some("t-2-0"), "{}").await.unwrap();
    assert_eq!(a.status, 200);
    ep.wait_for_requests(1, WAIT).await;

    // Reply::close drops the connection without an answer.
    ep.set_handler(|_, _| Reply::close());
    let e = post(&client(), &url, Some("t-2-1"), "{}").await;
    assert!(
        e.is_err(),
        "closed connection must fail: {:?}",
        e.map(|a| a.status)
    );
    assert_eq!(ep.requests().last().unwrap().answered_status, None);

    // Stopping the server releases hanging requests (no leak).
    ep.set_handler(|_, _| Reply::hang());
    let c2 = client();
    let url2 = url.clone();
    let pending = tokio::spawn(async move { post(&c2, &url2, None, "{}").await });
    wait_until(WAIT, "a request hangs", || ep.in_flight() >= 1).await;
    ep.stop().await;
    assert_eq!(ep.in_flight(), 0);
    let r = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(r.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_down_is_connection_failure() {
    let ep = Endpoint::start().await;
    let c = client();
    let url = ep.url();
    assert_eq!(post(&c, &url, None, "{}").await.unwrap().status, 200);

    ep.set_down(true);
    assert!(ep.is_down());
    let e = post(&client(), &url, Some("t-3-0"), "{}").await;
    assert!(
        e.is_err(),
        "down endpoint answered: {:?}",
        e.map(|a| a.status)
    );
    // The established keep-alive connection fails too.
    let e = post(&c, &url, Some("t-3-0"), "{}").await;
    assert!(
        e.is_err(),
        "down endpoint answered: {:?}",
        e.map(|a| a.status)
    );
    assert!(ep.refused_count() >= 1);
    assert_eq!(
        ep.request_count(),
        1,
        "requests while down are not recorded"
    );

    ep.set_down(false);
    let a = post(&client(), &url, Some("t-3-0"), "{}").await.unwrap();
    assert_eq!(a.status, 200);
    ep.wait_for_requests(2, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_restart_on_same_port() {
    let ep = Endpoint::start().await;
    let addr = ep.addr();
    let url = ep.url();
    assert_eq!(post(&client(), &url, None, "{}").await.unwrap().status, 200);

    ep.stop().await;
    assert!(!ep.is_running());
    assert!(post(&client(), &url, None, "{}").await.is_err());

    ep.restart().await;
    assert!(ep.is_running());
    assert_eq!(ep.addr(), addr);
    assert_eq!(post(&client(), &url, None, "{}").await.unwrap().status, 200);
    assert_eq!(ep.request_count(), 2, "state survives a restart");

    ep.shutdown().await;
    let ep2 = Endpoint::start_on(addr).await;
    assert_eq!(ep2.addr(), addr);
    assert_eq!(post(&client(), &url, None, "{}").await.unwrap().status, 200);
    assert_eq!(ep2.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge() {
    let ep = Endpoint::start().await;
    let c = h2c_client();
    for i in 0..3 {
        let id = format!("t-4-{i}");
        let id: &'static str = Box::leak(id.into_boxed_str());
        assert_eq!(
            post(&c, &ep.url(), Some(id), "{}").await.unwrap().status,
            200
        );
    }
    assert_eq!(ep.distinct_successful_ids().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_is_measured() {
    let ep = Endpoint::start().await;
    ep.slow(Duration::from_millis(400));
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        let url = ep.url();
        tasks.push(tokio::spawn(
            async move { post(&c, &url, None, "{}").await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, 200);
    }
    let max = ep.max_concurrency();
    assert!((2..=8).contains(&max), "max_concurrency = {max}");
    assert_eq!(ep.in_flight(), 0);
    ep.reset_max_concurrency();
    assert_eq!(ep.max_concurrency(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keep_alive_requests() {
    const N: usize = 4000;
    const CONN: usize = 64;
    let ep = Endpoint::start().await;
    let c = client();
    let mut tasks = Vec::new();
    for w in 0..CONN {
        let c = c.clone();
        let url = ep.url();
        tasks.push(tokio::spawn(async move {
            for i in (w..N).step_by(CONN) {
                let id: &'static str = Box::leak(format!("t-5-{i}").into_boxed_str());
                let a = post(&c, &url, Some(id), "{}").await?;
                if a.status != 200 {
                    return Err(format!("status {}", a.status));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    ep.wait_for_requests(N, WAIT).await;
    assert_eq!(ep.distinct_successful_ids().len(), N);
    assert!(ep.max_concurrency() <= CONN);
}
