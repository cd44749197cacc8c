//! What the endpoint receives: the request encoding of a record. Pure, no I/O.
//!
//! - [`raw`]: the value byte for byte, metadata and Kafka headers as HTTP headers.
//!
//! CloudEvents (binary and structured) and Standard Webhooks signing land here next.

pub mod raw;

pub use raw::{RequestTemplate, IDEMPOTENCY_KEY};
