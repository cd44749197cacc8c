//! The dead-letter producer: writes a failed record to the dead-letter topic with its original
//! key, value and headers plus error headers, and waits for the broker's acknowledgement
//! (the [`DeadLetterSink`] of `on_failure: dead_letter`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::client_config::producer_config;
use crate::config::{FailureAction, KafkaConfig};
use crate::delivery::{AttemptOutcome, BoxFuture, DeadLetterSink, OnFailure};
use crate::record::Record;

/// Headers added to a dead-lettered record (after the original headers).
pub const ERROR_HEADERS: [&str; 7] = [
    "kws-error-status",
    "kws-error-attempts",
    "kws-error-message",
    "kws-original-topic",
    "kws-original-partition",
    "kws-original-offset",
    "kws-original-timestamp",
];

/// Produces failed records to one topic.
#[derive(Clone)]
pub struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterProducer {
    /// `base` carries bootstrap servers and the user's security properties
    /// ([`super::client_config::producer_config`]).
    pub fn new(base: &ClientConfig, topic: String) -> Result<Self, KafkaError> {
        let mut config = base.clone();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5");
        let producer = config.create()?;
        Ok(Self { producer, topic })
    }

    /// Writes the record; `Ok` only once the broker acknowledged it (acks=all).
    pub async fn send(
        &self,
        record: &Record,
        last: &AttemptOutcome,
        attempts: u32,
    ) -> Result<(), KafkaError> {
        let mut headers =
            OwnedHeaders::new_with_capacity(record.headers.len() + ERROR_HEADERS.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let status = last
            .status()
            .map(|status| status.to_string())
            .unwrap_or_default();
        let values = [
            status,
            attempts.to_string(),
            last.describe(),
            record.topic.to_string(),
            record.partition.to_string(),
            record.offset.to_string(),
            record
                .timestamp_ms
                .map(|ms| ms.to_string())
                .unwrap_or_default(),
        ];
        for (key, value) in ERROR_HEADERS.iter().zip(values.iter()) {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let mut message: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = &record.key {
            message = message.key(key.as_ref());
        }
        if let Some(value) = &record.value {
            message = message.payload(value.as_ref());
        }
        self.producer
            .send(message, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }
}

impl DeadLetterSink for DeadLetterProducer {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn write<'a>(
        &'a self,
        record: &'a Record,
        last: &'a AttemptOutcome,
        attempts: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.send(record, last, attempts)
                .await
                .map_err(|error| error.to_string())
        })
    }
}

/// The delivery failure policy for `action`, with its producer when it needs one.
pub fn on_failure(action: &FailureAction, kafka: &KafkaConfig) -> Result<OnFailure, KafkaError> {
    Ok(match action {
        FailureAction::Block => OnFailure::Block,
        FailureAction::Drop => OnFailure::Drop,
        FailureAction::DeadLetter { topic } => OnFailure::DeadLetter(Arc::new(
            DeadLetterProducer::new(&producer_config(kafka), topic.clone())?,
        )),
    })
}
