//! `delivery.batch`: many records per request (off when absent), and its validation into
//! [`BatchSettings`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::duration::serde_text;
use super::format::Format;
use super::{invalid, ConfigError};

/// Batching: up to `max_records` records of one partition per request, at most `max_bytes`
/// of body, a partly filled batch waiting at most `max_wait` for more.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Records per request at most.
    #[serde(default = "defaults::batch_max_records")]
    pub max_records: usize,
    /// Bytes of request body at most; a single record larger than this is sent alone.
    #[serde(default = "defaults::batch_max_bytes")]
    pub max_bytes: usize,
    /// How long a partly filled batch waits for more records once nothing more is buffered.
    #[serde(default = "defaults::batch_max_wait", with = "serde_text")]
    #[schemars(with = "String")]
    pub max_wait: Duration,
    /// The body with `format: raw`: `json` (an array of envelopes) or `ndjson` (one envelope
    /// per line). With a CloudEvents format the body is a CloudEvents JSON batch.
    #[serde(default)]
    pub encoding: BatchEncoding,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchEncoding {
    /// `application/json`: a JSON array of envelopes.
    #[default]
    Json,
    /// `application/x-ndjson`: one envelope per line.
    Ndjson,
}

/// What a batch body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchBody {
    JsonArray,
    Ndjson,
    /// `application/cloudevents-batch+json`: a JSON array of structured CloudEvents.
    CloudEvents,
}

/// Validated batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
    pub body: BatchBody,
}

/// Upper bounds that keep one partition's buffer (two batches) in memory reasonable.
const MAX_RECORDS: usize = 10_000;
const MAX_BYTES: usize = 64 << 20;
const MAX_WAIT: Duration = Duration::from_secs(60);

impl BatchConfig {
    pub(super) fn validate(&self, format: Format) -> Result<BatchSettings, ConfigError> {
        if self.max_records == 0 || self.max_records > MAX_RECORDS {
            return Err(invalid(
                "delivery.batch.max_records",
                format!("must be between 1 and {MAX_RECORDS}"),
            ));
        }
        if self.max_bytes < 1024 || self.max_bytes > MAX_BYTES {
            return Err(invalid(
                "delivery.batch.max_bytes",
                format!("must be between 1024 and {MAX_BYTES} (bytes of request body)"),
            ));
        }
        if self.max_wait > MAX_WAIT {
            return Err(invalid("delivery.batch.max_wait", "must be at most 60s"));
        }
        let body = match (format, self.encoding) {
            (Format::Raw, BatchEncoding::Json) => BatchBody::JsonArray,
            (Format::Raw, BatchEncoding::Ndjson) => BatchBody::Ndjson,
            (_, BatchEncoding::Json) => BatchBody::CloudEvents,
            (_, BatchEncoding::Ndjson) => {
                return Err(invalid(
                    "delivery.batch.encoding",
                    "ndjson applies to format: raw; a CloudEvents format sends a CloudEvents JSON batch (leave encoding out)",
                ))
            }
        };
        Ok(BatchSettings {
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_wait: self.max_wait,
            body,
        })
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: defaults::batch_max_records(),
            max_bytes: defaults::batch_max_bytes(),
            max_wait: defaults::batch_max_wait(),
            encoding: BatchEncoding::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_bodies() {
        let config = BatchConfig::default();
        let settings = config.validate(Format::Raw).unwrap();
        assert_eq!(settings.body, BatchBody::JsonArray);
        assert_eq!(
            config.validate(Format::CloudeventsBinary).unwrap().body,
            BatchBody::CloudEvents
        );
        let ndjson = BatchConfig {
            encoding: BatchEncoding::Ndjson,
            ..BatchConfig::default()
        };
        assert_eq!(
            ndjson.validate(Format::Raw).unwrap().body,
            BatchBody::Ndjson
        );
        let error = ndjson.validate(Format::CloudeventsStructured).unwrap_err();
        assert!(error.to_string().contains("delivery.batch.encoding"));
        for bad in [
            BatchConfig {
                max_records: 0,
                ..BatchConfig::default()
            },
            BatchConfig {
                max_bytes: 10,
                ..BatchConfig::default()
            },
            BatchConfig {
                max_wait: Duration::from_secs(61),
                ..BatchConfig::default()
            },
        ] {
            assert!(bad
                .validate(Format::Raw)
                .unwrap_err()
                .to_string()
                .contains("delivery.batch."));
        }
    }
}
