//! The requests in flight the budget pays for when `delivery.concurrency` is not set.
//!
//! A request in flight holds more than its record: a connection (HTTP/1.1 sends one request
//! per connection at a time) with its read and write buffers and its task, the request's
//! body, and the attempt's task. None of that is in the records' share, and without a shared
//! limit one member sends a request per partition at once: at 500 partitions and a 32 MiB
//! budget that was 85–88 MiB of peak RSS against 59–69 MiB with 64 requests at most
//! (bench/README.md, "Scale").

/// Budget bytes per request in flight (64 MiB: 128 requests).
pub const BYTES_PER_REQUEST: u64 = 512 << 10;
/// Never fewer requests than this (the smallest budget, 8 MiB, gives 16).
pub const MIN_REQUESTS: usize = 16;
/// Never more (a budget of 512 MiB or more).
pub const MAX_REQUESTS: usize = 1024;

/// The shared limit on requests in flight that `budget` bytes pay for.
pub fn requests_within(budget: u64) -> usize {
    usize::try_from(budget / BYTES_PER_REQUEST)
        .unwrap_or(MAX_REQUESTS)
        .clamp(MIN_REQUESTS, MAX_REQUESTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn one_request_per_half_mebibyte_of_budget_within_the_bounds() {
        assert_eq!(requests_within(64 * MIB), 128);
        assert_eq!(requests_within(32 * MIB), 64);
        assert_eq!(requests_within(8 * MIB), MIN_REQUESTS);
        assert_eq!(requests_within(MIB), MIN_REQUESTS);
        assert_eq!(requests_within(256 * MIB), 512);
        assert_eq!(requests_within(64 << 30), MAX_REQUESTS);
        assert_eq!(requests_within(u64::MAX), MAX_REQUESTS);
    }
}
