//! OAuth2 client credentials (`delivery.auth.oauth2`, RFC 6749 §4.4): one cached access token
//! for all deliveries, fetched over the endpoint's own pooled client, refreshed shortly before
//! it expires or when the endpoint rejected it (401). One fetch at a time (callers wait for it
//! and share its token); a failed fetch is answered from memory for a second, so many
//! partitions cannot turn one failing token endpoint into a storm.
//!
//! Why not the `oauth2` crate: it brings its own HTTP client traits (reqwest, ureq or a
//! hand-written adapter), while the grant is one form POST; this file reuses the client that
//! already carries the configured TLS trust, timeouts and pool.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;

use super::connector::{describe_error, Pool};
use crate::config::OAuth2Settings;
use crate::ops::{events, Metrics};

/// Largest token response read.
const MAX_RESPONSE: usize = 64 << 10;
/// How long a failed fetch is answered from memory.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// At most this long before expiry the token is refreshed (less for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An access token as the `Authorization` header value, and when to refresh it.
#[derive(Clone, Debug)]
pub struct Token {
    /// `Bearer <access token>`, marked sensitive.
    pub value: HeaderValue,
    /// Which fetch this token came from: a 401 names it, so concurrent 401s for the same
    /// token cause one refresh.
    pub generation: u64,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
}

impl Token {
    /// When the token is refreshed (before it expires); `None`: only after a 401.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// When the token expires (`expires_in` after it arrived); `None`: not given.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    failed: Option<(Instant, String)>,
    generation: u64,
}

/// The token source of `delivery.auth.oauth2`.
pub struct OAuth2 {
    token_uri: Uri,
    /// `Basic base64(urlencode(id):urlencode(secret))`, marked sensitive.
    basic: HeaderValue,
    /// `grant_type=client_credentials[&scope=…]`.
    form: Bytes,
    state: tokio::sync::Mutex<State>,
    metrics: Metrics,
}

impl OAuth2 {
    pub fn new(settings: &OAuth2Settings, metrics: Metrics) -> Self {
        let credentials = format!(
            "{}:{}",
            form_encode(&settings.client_id),
            form_encode(&settings.client_secret.0)
        );
        let mut basic = HeaderValue::from_str(&format!("Basic {}", BASE64.encode(credentials)))
            .expect("base64 is a valid header value");
        basic.set_sensitive(true);
        let mut form = String::from("grant_type=client_credentials");
        if !settings.scopes.is_empty() {
            form.push_str("&scope=");
            form.push_str(&form_encode(&settings.scopes.join(" ")));
        }
        Self {
            token_uri: settings.token_uri.clone(),
            basic,
            form: Bytes::from(form),
            state: tokio::sync::Mutex::new(State::default()),
            metrics,
        }
    }

    /// The token to send: the cached one while it is fresh, else a new one. `rejected` is
    /// the generation of a token the endpoint answered 401 to: it is replaced unless that
    /// already happened. While a refresh fails, a token that has not expired yet is still
    /// used. The error describes the failure without any secret.
    pub async fn token(&self, pool: &Pool, rejected: Option<u64>) -> Result<Token, String> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let usable = state
            .token
            .as_ref()
            .filter(|token| rejected != Some(token.generation))
            .cloned();
        if let Some(token) = &usable {
            if token.refresh_at.is_none_or(|at| now < at) {
                return Ok(token.clone());
            }
        }
        if let Some((at, error)) = &state.failed {
            if now.duration_since(*at) < FAILURE_HOLD {
                return still_valid(usable, now).ok_or_else(|| error.clone());
            }
        }
        match self.fetch(pool, state.generation + 1).await {
            Ok(token) => {
                state.generation = token.generation;
                state.token = Some(token.clone());
                state.failed = None;
                Ok(token)
            }
            Err(error) => {
                state.failed = Some((Instant::now(), error.clone()));
                still_valid(usable, now).ok_or(error)
            }
        }
    }

    async fn fetch(&self, pool: &Pool, generation: u64) -> Result<Token, String> {
        let endpoint = self.describe_endpoint();
        let result = self.request(pool, generation, &endpoint).await;
        let reported = match &result {
            Ok(token) => Ok(token
                .expires_at
                .map(|at| at.saturating_duration_since(Instant::now()))),
            Err(error) => Err(error.as_str()),
        };
        events::oauth2_token_requested(&self.metrics, &endpoint, reported);
        result
    }

    async fn request(&self, pool: &Pool, generation: u64, endpoint: &str) -> Result<Token, String> {
        let mut request = Request::new(Full::new(self.form.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.token_uri.clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(AUTHORIZATION, self.basic.clone());
        let response = pool.network().request(request).await.map_err(|error| {
            format!(
                "OAuth2 token request to {endpoint} failed: {}",
                describe_error(error)
            )
        })?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|_| format!("OAuth2 token response from {endpoint} could not be read"))?
            .to_bytes();
        parse_response(status, &body, Instant::now(), generation)
            .map_err(|reason| format!("OAuth2 token endpoint {endpoint}: {reason}"))
    }

    /// The token URL without its query (which could carry something private).
    fn describe_endpoint(&self) -> String {
        format!(
            "{}://{}{}",
            self.token_uri.scheme_str().unwrap_or("https"),
            self.token_uri
                .authority()
                .map(|authority| authority.as_str())
                .unwrap_or_default(),
            self.token_uri.path()
        )
    }
}

/// The token, if it exists and has not expired (a refresh is overdue, not fatal).
fn still_valid(token: Option<Token>, now: Instant) -> Option<Token> {
    token.filter(|token| token.expires_at.is_none_or(|at| now < at))
}

#[derive(Deserialize)]
struct Response {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<ExpiresIn>,
    error: Option<String>,
}

/// `expires_in` is a number by the RFC; some servers send a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(f64),
    Text(String),
}

/// Reads a token response (RFC 6749 §5.1 / §5.2) that arrived at `now` with `status`. The
/// reason never quotes the token; of an error response only the standard `error` code is
/// kept. Public for the `oauth2` fuzz target; the sidecar calls it only here.
pub fn parse_response(
    status: u16,
    body: &[u8],
    now: Instant,
    generation: u64,
) -> Result<Token, String> {
    let parsed: Option<Response> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let code = parsed
            .and_then(|response| response.error)
            .filter(|code| quotable(code));
        return Err(match code {
            Some(code) => {
                format!("HTTP {status} ({code}); check client_id, client_secret and scopes")
            }
            None => format!("HTTP {status}"),
        });
    }
    let response = parsed.ok_or("the answer is not a JSON token response")?;
    if let Some(kind) = &response.token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            // Quoted only when it is a short word: the reason goes into log lines (the
            // `oauth2` fuzz target found control characters and any length quoted here).
            return Err(if quotable(kind) {
                format!("token_type `{kind}` is not Bearer")
            } else {
                "token_type is not Bearer".to_string()
            });
        }
    }
    let access_token = response
        .access_token
        .filter(|token| !token.is_empty())
        .ok_or("the answer has no access_token")?;
    // RFC 6749 (A.12) makes a token printable ASCII; `HeaderValue` would also take bytes
    // above 0x7f and tabs (the `oauth2` fuzz target found UTF-8 tokens sent as they came).
    if !access_token
        .bytes()
        .all(|byte| (0x20..0x7f).contains(&byte))
    {
        return Err("the access_token has characters not allowed in a header".to_string());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {access_token}"))
        .map_err(|_| "the access_token has characters not allowed in a header".to_string())?;
    value.set_sensitive(true);
    let lifetime = match response.expires_in {
        None => None,
        Some(ExpiresIn::Number(seconds)) => Some(seconds),
        Some(ExpiresIn::Text(text)) => text.trim().parse::<f64>().ok(),
    }
    .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
    .map(|seconds| Duration::from_secs_f64(seconds.min(1e9)));
    Ok(Token {
        value,
        generation,
        // Without expires_in the token is used until the endpoint answers 401.
        refresh_at: lifetime.map(|lifetime| now + lifetime - REFRESH_MARGIN.min(lifetime / 5)),
        expires_at: lifetime.map(|lifetime| now + lifetime),
    })
}

/// Whether a word of the answer may be quoted in the reason: at most 64 visible ASCII
/// characters, so the reason stays one short line.
fn quotable(text: &str) -> bool {
    text.len() <= 64 && text.bytes().all(|byte| byte.is_ascii_graphic())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_token_and_schedules_the_refresh_before_expiry() {
        let now = Instant::now();
        let body = br#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#;
        let token = parse_response(200, body, now, 7).unwrap();
        assert_eq!(token.value, "Bearer abc");
        assert!(token.value.is_sensitive());
        assert_eq!(token.generation, 7);
        assert_eq!(token.refresh_at, Some(now + Duration::from_secs(3540)));
        assert_eq!(token.expires_at, Some(now + Duration::from_secs(3600)));
        // Short-lived: refreshed at 80 % of its life.
        let body = br#"{"access_token":"abc","expires_in":"10"}"#;
        let token = parse_response(200, body, now, 1).unwrap();
        assert_eq!(token.refresh_at, Some(now + Duration::from_secs(8)));
        // No expires_in: kept until a 401.
        let token = parse_response(200, br#"{"access_token":"abc"}"#, now, 1).unwrap();
        assert_eq!(token.refresh_at, None);
    }

    #[test]
    fn errors_keep_the_error_code_only() {
        let now = Instant::now();
        let body = br#"{"error":"invalid_client","error_description":"secret s3cr3t is wrong"}"#;
        let error = parse_response(401, body, now, 1).unwrap_err();
        assert!(error.contains("HTTP 401 (invalid_client)"), "{error}");
        assert!(!error.contains("s3cr3t"));
        assert_eq!(
            parse_response(500, b"<html>", now, 1).unwrap_err(),
            "HTTP 500"
        );
        let error = parse_response(200, br#"{"access_token":"t0k","token_type":"mac"}"#, now, 1)
            .unwrap_err();
        assert!(error.contains("not Bearer") && !error.contains("t0k"));
        // A token_type that is not a short word is not quoted (fuzz target `oauth2`).
        for kind in ["t0k3n-long-en\u{7f}ugh-x", "a\nb", &"x".repeat(65)] {
            let kind = serde_json::to_string(kind).unwrap();
            let body = format!(r#"{{"access_token":"t0k","token_type":{kind}}}"#);
            let error = parse_response(200, body.as_bytes(), now, 1).unwrap_err();
            assert_eq!(error, "token_type is not Bearer");
        }
        assert!(parse_response(200, br#"{"token_type":"Bearer"}"#, now, 1).is_err());
        let error = parse_response(200, b"{\"access_token\":\"a\nb\"}", now, 1).unwrap_err();
        assert!(!error.contains("a\nb"));
        // Only printable ASCII makes a token (fuzz target `oauth2`: UTF-8 and tabs passed).
        for token in ["t\u{415}3n", "a\tb"] {
            let body = format!(
                r#"{{"access_token":{}}}"#,
                serde_json::to_string(token).unwrap()
            );
            let error = parse_response(200, body.as_bytes(), now, 1).unwrap_err();
            assert!(error.contains("not allowed in a header"), "{error}");
        }
    }

    #[test]
    fn form_encoding_of_credentials_and_scopes() {
        assert_eq!(form_encode("a b:c/d~é"), "a+b%3Ac%2Fd%7E%C3%A9");
        let oauth = OAuth2::new(
            &OAuth2Settings {
                token_uri: "https://auth.example.com/token?tenant=x".parse().unwrap(),
                client_id: "id:1".into(),
                client_secret: crate::config::Secret("p@ss".into()),
                scopes: vec!["events.write".into(), "events.read".into()],
            },
            Metrics::new(),
        );
        assert_eq!(
            oauth.form,
            "grant_type=client_credentials&scope=events.write+events.read"
        );
        assert_eq!(
            oauth.basic,
            format!("Basic {}", BASE64.encode("id%3A1:p%40ss")).as_str()
        );
        assert!(oauth.basic.is_sensitive());
        assert_eq!(oauth.describe_endpoint(), "https://auth.example.com/token");
    }
}
