//! Fuzz target `oauth2`: arbitrary bytes as the token endpoint's answer, through
//! `delivery::oauth2::parse_response` (RFC 6749 §5.1 / §5.2). Invariants:
//!
//! - an error or a token, never a panic;
//! - a token is `Bearer <access_token>`, marked sensitive; its lifetime follows the code's
//!   rules: `expires_in` (a number, or a string holding one) that is finite and positive
//!   gives `expires_at` = arrival + `expires_in` capped at 10⁹ s and a refresh at or before it
//!   (60 s early, or at 80 % for a token living less than 5 minutes), never before arrival;
//!   anything else gives neither (the token is kept until a 401);
//! - an error's text never holds the access token (a 2xx or not): the echoed `error` code and
//!   `token_type` are the answer's own words and are taken out before looking, and only
//!   tokens of 8 characters or more that are not part of the fixed wording are looked for;
//! - an error's text is one line of printable text of bounded length (it goes into log lines
//!   and the `oauth2` event), whatever the answer holds.
//!
//! Input: two bytes of HTTP status (100 + u16 % 500, with the low bit of the first byte
//! forcing 200 so most inputs are read as tokens), then the body.
#![no_main]

use std::time::{Duration, Instant};

use kafka_webhook_sidecar::delivery::oauth2::parse_response;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The reason's fixed wording (a token inside one of these is not a leak).
const WORDING: &[&str] = &[
    "; check client_id, client_secret and scopes",
    "the answer is not a JSON token response",
    "the answer has no access_token",
    "the access_token has characters not allowed in a header",
    " is not Bearer",
    "token_type ",
];

/// The longest reason an answer can produce (a status, a 64-character code, the wording).
const MAX_REASON: usize = 256;

fn member(value: &Option<Value>, name: &str) -> Option<String> {
    value.as_ref()?.get(name)?.as_str().map(str::to_string)
}

fuzz_target!(|data: &[u8]| {
    let [high, low, body @ ..] = data else {
        return;
    };
    let status = if high & 1 == 1 {
        200
    } else {
        100 + u16::from_be_bytes([*high, *low]) % 500
    };
    let now = Instant::now();
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let secret = member(&value, "access_token");
    match parse_response(status, body, now, 1) {
        Ok(token) => {
            assert!((200..300).contains(&status), "a token from HTTP {status}");
            assert!(token.value.is_sensitive(), "the header is marked sensitive");
            let text = token
                .value
                .to_str()
                .expect("a token header is visible ASCII");
            assert!(text.starts_with("Bearer "), "{text}");
            match (token.refresh_at(), token.expires_at()) {
                (None, None) => {}
                (Some(refresh), Some(expires)) => {
                    let lifetime = expires - now;
                    assert!(
                        lifetime <= Duration::from_secs(1_000_000_000),
                        "{lifetime:?}"
                    );
                    assert!(
                        refresh >= now && refresh <= expires,
                        "refresh outside its life"
                    );
                    let early = expires - refresh;
                    assert!(
                        early <= Duration::from_secs(60),
                        "refreshed {early:?} early"
                    );
                }
                other => panic!("refresh and expiry go together: {other:?}"),
            }
        }
        Err(reason) => {
            assert!(
                reason.len() <= MAX_REASON && !reason.chars().any(char::is_control),
                "the reason is not one bounded line: {reason:?}"
            );
            let Some(secret) = secret.filter(|secret| secret.len() >= 8) else {
                return;
            };
            if WORDING.iter().any(|text| text.contains(&secret)) {
                return;
            }
            let mut scrubbed = reason.clone();
            for echoed in [member(&value, "error"), member(&value, "token_type")]
                .into_iter()
                .flatten()
                .filter(|text| !text.is_empty())
            {
                // A marker, not "": wording on both sides of an echo must not join up.
                scrubbed = scrubbed.replace(&echoed, "\u{0}\u{ffff}\u{0}");
            }
            assert!(
                !scrubbed.contains(&secret),
                "the reason holds the access token: {reason:?}"
            );
        }
    }
});
