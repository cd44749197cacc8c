//! What the endpoint receives: the request encoding of a record. Pure, no I/O.
//!
//! - [`request`]: the [`RequestTemplate`]: headers and body once per record, the signature
//!   per attempt.
//! - [`raw`]: `format: raw`, the value byte for byte, metadata and Kafka headers as HTTP
//!   headers (the CloudEvents formats send these headers too).
//! - [`cloudevent`]: a record as a CloudEvent (the one it already is in the Kafka binding,
//!   or a new one wrapping it); [`cloudevents_http`]: that event in HTTP binary or
//!   structured mode.
//! - [`batch`]: batch bodies (JSON array or NDJSON of envelopes, CloudEvents JSON batch).
//! - [`embed`]: whether record bytes go into a JSON body as JSON (one strict document) or
//!   as base64; every JSON writer above asks it.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`base64`]: base64 of record bytes (SIMD).

pub mod base64;
pub mod batch;
pub mod cloudevent;
pub mod cloudevents_http;
pub mod embed;
pub mod raw;
pub mod request;
pub mod signing;

pub use batch::{BatchBuilder, BatchEncoder};
pub use raw::IDEMPOTENCY_KEY;
pub use request::{Prepared, RequestTemplate};
