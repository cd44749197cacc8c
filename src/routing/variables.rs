//! A record's CEL variables (the names in `config::routes::VARIABLES`), each built only when
//! some expression of its topic's routes reads it: `headers` is a map, `ce` parses a
//! structured event, `value` parses JSON, and a filter on `topic` alone pays for none of them.

use std::collections::HashMap;

use crate::config::{CloudEventsSettings, Expression};
use crate::format::cloudevent::{attribute_text, CloudEvent};
use crate::record::Record;

/// Which variables the expressions read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reads {
    topic: bool,
    partition: bool,
    offset: bool,
    timestamp: bool,
    key: bool,
    headers: bool,
    ce: bool,
    value: bool,
}

impl Reads {
    pub fn of<'a>(expressions: impl Iterator<Item = &'a Expression>) -> Reads {
        let mut reads = Reads::default();
        for name in expressions.flat_map(|expression| expression.variables.iter()) {
            match name.as_str() {
                "topic" => reads.topic = true,
                "partition" => reads.partition = true,
                "offset" => reads.offset = true,
                "timestamp" => reads.timestamp = true,
                "key" => reads.key = true,
                "headers" => reads.headers = true,
                "ce" => reads.ce = true,
                "value" => reads.value = true,
                // Validation admits only the names above.
                _ => {}
            }
        }
        reads
    }
}

/// Adds the variables `reads` names to `scope`. Text that is not UTF-8 (keys, header values)
/// is read lossily (U+FFFD for invalid bytes); a null header value is the empty string; of
/// repeated headers, the first counts (as for `content-type`).
pub fn add(
    scope: &mut cel::Context<'_, '_>,
    record: &Record,
    reads: &Reads,
    cloudevents: &CloudEventsSettings,
    content_type: &str,
) {
    if reads.topic {
        scope.add_variable_from_value("topic", record.topic.to_string());
    }
    if reads.partition {
        scope.add_variable_from_value("partition", i64::from(record.partition));
    }
    if reads.offset {
        scope.add_variable_from_value("offset", record.offset);
    }
    if reads.timestamp {
        scope.add_variable_from_value(
            "timestamp",
            record
                .timestamp_ms
                .map_or(cel::Value::Null, cel::Value::Int),
        );
    }
    if reads.key {
        let key = record.key.as_deref().map_or(cel::Value::Null, |key| {
            cel::Value::from(String::from_utf8_lossy(key).into_owned())
        });
        scope.add_variable_from_value("key", key);
    }
    if reads.headers {
        let mut headers: HashMap<String, String> = HashMap::with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers.entry(name.clone()).or_insert_with(|| {
                value
                    .as_deref()
                    .map(|value| String::from_utf8_lossy(value).into_owned())
                    .unwrap_or_default()
            });
        }
        scope.add_variable_from_value("headers", headers);
    }
    if reads.ce {
        let event = CloudEvent::from_record(record, cloudevents, content_type);
        let mut attributes: HashMap<String, String> = event
            .attributes
            .iter()
            .map(|(name, value)| (name.clone(), attribute_text(value)))
            .collect();
        if let Some(datacontenttype) = event.datacontenttype {
            attributes.insert("datacontenttype".to_string(), datacontenttype);
        }
        scope.add_variable_from_value("ce", attributes);
    }
    if reads.value {
        let value = record
            .value
            .as_deref()
            .and_then(|value| serde_json::from_slice::<serde_json::Value>(value).ok())
            .and_then(|json| cel::to_value(json).ok())
            .unwrap_or(cel::Value::Null);
        scope.add_variable_from_value("value", value);
    }
}
