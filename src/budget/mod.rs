//! The one memory budget (`kafka.memory_budget`) and how it is shared out. Pure: the kafka
//! edge applies it.
//!
//! - [`prefetch`]: half of the budget bounds librdkafka's prefetch. Its per-partition limit
//!   is fixed when the consumer is created, so it is shared by every partition of the
//!   subscribed topics (all of which this member may come to own).
//! - [`buffers`]: the other half bounds the records the workers hold (buffered, in flight,
//!   and batch bodies), shared by the partitions assigned now and recomputed on every
//!   assignment.
//! - [`requests`]: when `delivery.concurrency` is not set, the budget also sets the shared
//!   limit on requests in flight (each holds a connection's buffers and tasks).
//!
//! A record larger than a partition's share still flows, one at a time: librdkafka always
//! returns at least one record per fetch, and a worker always takes one record when it holds
//! none.

pub mod buffers;
pub mod prefetch;
pub mod requests;

pub use buffers::BufferShare;
pub use prefetch::Prefetch;
