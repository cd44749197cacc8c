//! Fuzz target `routes`: arbitrary text as a route's CEL `filter` (or a rule's `match`),
//! through the config validation that compiles it (`config::routes::compile`: syntax, the
//! variables it names) and, when it compiles, the route decision for a few records
//! (`routing::Matcher`, which evaluates it over the record's variables). Invariants:
//!
//! - compiling gives `Ok` or an error naming the key, never a panic;
//! - a compiled expression, evaluated on any record, gives true, false or an error (counted
//!   as false), never a panic, and the matcher gives one decision per route: `Skip`, or
//!   `Deliver` with the rule's URL for a rule (`None` for a plain filter).
//!
//! Input: one flag byte, then the expression (lossy UTF-8). Flag bit 0: the text is the
//! `match` of a rule (path `/matched`, default `skip`), else the route's `filter`.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_webhook_sidecar::config::{routes, Config, RouteConfig, RuleConfig};
use kafka_webhook_sidecar::record::Record;
use kafka_webhook_sidecar::routing::Decision;
use libfuzzer_sys::fuzz_target;

/// A plain JSON record, a Kafka binary-mode CloudEvent, a tombstone with a binary key and
/// odd headers.
fn records() -> Vec<Record> {
    let record = |value: Option<&'static [u8]>,
                  key: Option<&'static [u8]>,
                  headers: &[(&str, Option<&'static [u8]>)]| Record {
        topic: Arc::from("orders"),
        partition: 2,
        offset: 41,
        timestamp_ms: Some(1_700_000_000_123),
        key: key.map(Bytes::from_static),
        value: value.map(Bytes::from_static),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.map(Bytes::from_static)))
            .collect(),
        received_at: Instant::now(),
        target: None,
    };
    vec![
        record(
            Some(br#"{"n":1,"s":"x","a":[1,2]}"#),
            Some(b"k-1"),
            &[
                ("env", Some(b"prod")),
                ("content-type", Some(b"application/json")),
            ],
        ),
        record(
            Some(b"\x00\xff"),
            Some(b"k-2"),
            &[
                ("ce_specversion", Some(b"1.0")),
                ("ce_id", Some(b"e-1")),
                ("ce_source", Some(b"/s")),
                ("ce_type", Some(b"order.created")),
            ],
        ),
        record(
            None,
            Some(b"\xff\xfe"),
            &[("h", None), ("h", Some(b"\xc3"))],
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let source = String::from_utf8_lossy(rest).into_owned();
    let as_rule = flags & 1 != 0;
    let _ = routes::compile(&source, "routes[fuzz].filter");
    let mut config = Config::new("k:9092", "g", &["orders"], "http://app:8080/events");
    config.routes.push(RouteConfig {
        name: "fuzz".into(),
        topics: Vec::new(),
        group_id: None,
        filter: (!as_rule).then(|| source.clone()),
        rules: if as_rule {
            vec![RuleConfig {
                condition: source.clone(),
                path: "/matched".into(),
            }]
        } else {
            Vec::new()
        },
        default: None,
        delivery: None,
    });
    let settings = match config.settings() {
        Ok(settings) => settings,
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.contains("routes[fuzz]"),
                "the error names the route: {text}"
            );
            return;
        }
    };
    let matcher = common::matcher(&settings);
    let mut decisions = Vec::new();
    for record in records() {
        matcher.decide(&record, &mut decisions);
        assert_eq!(decisions.len(), 1, "one decision per route");
        match &decisions[0] {
            Decision::Skip => {}
            Decision::Deliver(None) => assert!(!as_rule, "a rule gives its URL"),
            Decision::Deliver(Some(uri)) => {
                assert!(as_rule, "a filter gives no URL");
                assert_eq!(uri.path(), "/matched");
            }
        }
    }
});
