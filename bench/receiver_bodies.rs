//! What one request to the bench receiver carried: the records in its body, each with the
//! benchmark's sequence number and the record's timestamp, by Content-Type.
//!
//! | Content-Type | sender | entries |
//! |---|---|---|
//! | `application/json` with a `[` body | the sidecar, `delivery.batch` (`encoding: json`) | a JSON array of envelopes |
//! | `application/x-ndjson` | the sidecar, `encoding: ndjson` | one envelope per line |
//! | `application/cloudevents-batch+json` | the sidecar, batch with a CloudEvents format | a JSON array of structured events (`data_base64`) |
//! | `multipart/*` | Benthos `http_client` with `batch_as_multipart: true` | one raw value per part |
//! | anything else | one record per request (raw, CloudEvents binary or structured) | the body itself, timestamp from `kafka-timestamp` |
//!
//! The bench's values start with `{seq}|`. An envelope carries them base64-encoded in
//! `value_base64` (they are not JSON), so only a prefix is decoded (16 characters give 12
//! bytes, enough for a sequence number below 10^11). Envelopes are read with borrowed
//! fields (`RawValue`): nothing of a value is copied, members the bench does not need
//! (`key`, `headers`, `id`, …) are skipped by the parser.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One record seen in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The benchmark's sequence number; `None` for a tombstone or a value the bench did not
    /// write (such an entry is counted as received, never as a distinct record).
    pub seq: Option<u64>,
    /// The record's timestamp (ms since the epoch): the latency is measured from it.
    pub timestamp_ms: Option<i64>,
}

/// A batch body that did not parse as its Content-Type says.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

/// The entries of one request. `header_timestamp_ms` is the `kafka-timestamp` header, used
/// for a single-record request only.
pub fn entries(
    content_type: Option<&str>,
    body: &[u8],
    header_timestamp_ms: Option<i64>,
) -> Result<Vec<Entry>, Malformed> {
    let content_type = content_type.unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" | "application/cloudevents-batch+json"
            if first_non_space(body) == Some(b'[') =>
        {
            json_array(body)
        }
        "application/x-ndjson" => ndjson(body),
        m if m.starts_with("multipart/") => {
            let boundary = boundary(content_type)
                .ok_or_else(|| Malformed(format!("no boundary in {content_type:?}")))?;
            multipart(body, boundary.as_bytes(), header_timestamp_ms)
        }
        _ => Ok(vec![Entry {
            seq: parse_seq(body),
            timestamp_ms: header_timestamp_ms,
        }]),
    }
}

/// The members of an envelope (or a CloudEvent) the bench reads; every other member is
/// skipped without being copied.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(borrow, default)]
    value_base64: Option<&'a RawValue>,
    /// CloudEvents structured: the value when it is not JSON.
    #[serde(borrow, default)]
    data_base64: Option<&'a RawValue>,
    /// CloudEvents: the record's timestamp as RFC 3339 (`2023-11-14T22:13:20.000Z`).
    #[serde(borrow, default)]
    time: Option<&'a str>,
}

impl Envelope<'_> {
    fn entry(&self) -> Entry {
        let encoded = self.value_base64.or(self.data_base64);
        Entry {
            seq: encoded.and_then(|raw| seq_from_base64_json(raw.get())),
            timestamp_ms: self
                .timestamp
                .or_else(|| self.time.and_then(rfc3339_utc_ms)),
        }
    }
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only, as the sidecar
/// writes `time`).
fn rfc3339_utc_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(range)?).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || b.last() != Some(&b'Z') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match b[19] {
        b'.' => {
            let digits = &text[20..text.len() - 1];
            let first3: String = digits.chars().chain("000".chars()).take(3).collect();
            first3.parse::<i64>().ok()?
        }
        _ => 0,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

fn json_array(body: &[u8]) -> Result<Vec<Entry>, Malformed> {
    let envelopes: Vec<Envelope> =
        serde_json::from_slice(body).map_err(|e| Malformed(format!("JSON array: {e}")))?;
    Ok(envelopes.iter().map(Envelope::entry).collect())
}

fn ndjson(body: &[u8]) -> Result<Vec<Entry>, Malformed> {
    if !body.is_empty() && body.last() != Some(&b'\n') {
        return Err(Malformed(
            "NDJSON: the last line does not end with \\n".into(),
        ));
    }
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            serde_json::from_slice::<Envelope>(line)
                .map(|envelope| envelope.entry())
                .map_err(|e| Malformed(format!("NDJSON line {}: {e}", i + 1)))
        })
        .collect()
}

/// The sequence number from a JSON string of base64 (quotes included, as `RawValue` gives
/// it), decoding only its first 16 characters.
fn seq_from_base64_json(raw: &str) -> Option<u64> {
    let text = raw.strip_prefix('"')?.strip_suffix('"')?;
    let prefix = text.get(..text.len().min(16))?;
    if prefix.contains('\\') {
        // An escaped character (`\/` is legal JSON): unescape the whole string, rare.
        let text: String = serde_json::from_str(raw).ok()?;
        return seq_from_base64(&text[..text.len().min(16)]);
    }
    seq_from_base64(prefix)
}

fn seq_from_base64(prefix: &str) -> Option<u64> {
    // Whole 4-character groups only: a shorter value is complete and padded already.
    let usable = prefix.len() - prefix.len() % 4;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&prefix[..usable])
        .ok()?;
    parse_seq(&bytes)
}

/// RFC 2046 multipart: the `boundary` parameter of the Content-Type.
fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
            .filter(|b| !b.is_empty())
    })
}

/// One entry per part: `--B CRLF headers CRLF CRLF content CRLF --B … --B--`. Parts carry no
/// timestamp (Benthos's Kafka metadata has it in whole seconds only): `header_timestamp_ms`,
/// if any, applies to every part.
fn multipart(
    body: &[u8],
    boundary: &[u8],
    header_timestamp_ms: Option<i64>,
) -> Result<Vec<Entry>, Malformed> {
    let malformed = |what: &str| Malformed(format!("multipart: {what}"));
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    // The first delimiter may open the body (no CRLF before it).
    let mut rest = if body.starts_with(&delimiter[2..]) {
        &body[delimiter.len() - 2..]
    } else {
        let at = find(body, &delimiter).ok_or_else(|| malformed("no delimiter"))?;
        &body[at + delimiter.len()..]
    };
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(out); // the close delimiter
        }
        let line_end = find(rest, b"\r\n").ok_or_else(|| malformed("delimiter line"))?;
        rest = &rest[line_end + 2..];
        let content_start = if rest.starts_with(b"\r\n") {
            2 // no part headers
        } else {
            find(rest, b"\r\n\r\n").ok_or_else(|| malformed("part headers"))? + 4
        };
        rest = &rest[content_start..];
        let end = find(rest, &delimiter).ok_or_else(|| malformed("unterminated part"))?;
        out.push(Entry {
            seq: parse_seq(&rest[..end]),
            timestamp_ms: header_timestamp_ms,
        });
        rest = &rest[end + delimiter.len()..];
    }
}

/// The first position of `needle` (not empty) in `haystack`: a scan for its first byte,
/// which is `\r` here, rare in the bench's values.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = haystack[from..].iter().position(|b| b == first) {
        let start = from + at;
        if haystack[start + 1..].starts_with(tail) {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

fn first_non_space(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// The sequence number at the start of a benchmark value: ASCII digits up to the first `|`;
/// in a CloudEvents structured body, at the start of the value in `data_base64`.
pub fn parse_seq(body: &[u8]) -> Option<u64> {
    if body.first() == Some(&b'{') {
        const MEMBER: &[u8] = b"\"data_base64\":\"";
        let start = find(body, MEMBER)? + MEMBER.len();
        // 28 base64 characters are the first 21 bytes: enough for `{seq}|`.
        let encoded = body.get(start..start + 28)?;
        let value = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return parse_seq(&value);
    }
    let end = body.iter().take(20).position(|b| *b == b'|')?;
    std::str::from_utf8(&body[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn value(seq: u64) -> String {
        format!("{seq}|{}", "x".repeat(1000))
    }

    fn entry(seq: u64, timestamp_ms: i64) -> Entry {
        Entry {
            seq: Some(seq),
            timestamp_ms: Some(timestamp_ms),
        }
    }

    /// Four envelopes as the contract describes them: a keyed record with headers, the
    /// same record again (a duplicate), a null-key record without headers, a tombstone.
    fn envelopes() -> Vec<String> {
        vec![
            format!(
                r#"{{"id":"bench-3-42","topic":"bench","partition":3,"offset":42,"timestamp":1700000000000,"key":"k-1","headers":[{{"name":"h","value":"text"}},{{"name":"b","value_base64":"AAE="}},{{"name":"n","value":null}}],"value_base64":"{}"}}"#,
                b64(&value(42))
            ),
            format!(
                r#"{{"id":"bench-3-42","topic":"bench","partition":3,"offset":42,"timestamp":1700000000000,"key":"k-1","value_base64":"{}"}}"#,
                b64(&value(42))
            ),
            format!(
                r#"{{"id":"bench-3-43","topic":"bench","partition":3,"offset":43,"timestamp":1700000000007,"value_base64":"{}"}}"#,
                b64(&value(9_876_543_210))
            ),
            r#"{"id":"bench-3-44","topic":"bench","partition":3,"offset":44,"timestamp":1700000000009,"key_base64":"/w==","tombstone":true}"#.to_string(),
        ]
    }

    fn expected() -> Vec<Entry> {
        vec![
            entry(42, 1_700_000_000_000),
            entry(42, 1_700_000_000_000),
            entry(9_876_543_210, 1_700_000_000_007),
            Entry {
                seq: None,
                timestamp_ms: Some(1_700_000_000_009),
            },
        ]
    }

    #[test]
    fn json_array_of_envelopes() {
        let body = format!("[{}]", envelopes().join(","));
        assert_eq!(
            entries(Some("application/json"), body.as_bytes(), None),
            Ok(expected())
        );
        // Whitespace between tokens, a charset parameter.
        let body = format!("[\n  {}\n]\n", envelopes().join(",\n  "));
        assert_eq!(
            entries(
                Some("application/json; charset=utf-8"),
                body.as_bytes(),
                None
            ),
            Ok(expected())
        );
        assert_eq!(entries(Some("application/json"), b"[]", None), Ok(vec![]));
    }

    #[test]
    fn as_the_sidecar_sends_it() {
        // Captured from the sidecar (commit 53a9e1c): a JSON value, a null key with a text
        // value `1|plain text`, a tombstone.
        let body = r#"[{"id":"contract-15875-0-0","topic":"contract-15875","partition":0,"offset":0,"timestamp":1795286589239,"key":"k-1","headers":[{"name":"h","value":"text"}],"value":{"a":1}},{"id":"contract-15875-0-1","topic":"contract-15875","partition":0,"offset":1,"timestamp":1795286589239,"headers":[{"name":"h","value":"text"}],"value_base64":"MXxwbGFpbiB0ZXh0"},{"id":"contract-15875-0-2","topic":"contract-15875","partition":0,"offset":2,"timestamp":1795286589239,"key":"k-3","headers":[{"name":"h","value":"text"}],"tombstone":true}]"#;
        let ts = Some(1_795_286_589_239);
        assert_eq!(
            entries(Some("application/json"), body.as_bytes(), None),
            Ok(vec![
                Entry {
                    seq: None,
                    timestamp_ms: ts
                },
                Entry {
                    seq: Some(1),
                    timestamp_ms: ts
                },
                Entry {
                    seq: None,
                    timestamp_ms: ts
                },
            ])
        );
    }

    #[test]
    fn ndjson_envelopes() {
        let body: String = envelopes().iter().map(|e| format!("{e}\n")).collect();
        assert_eq!(
            entries(Some("application/x-ndjson"), body.as_bytes(), None),
            Ok(expected())
        );
        let unterminated = body.trim_end();
        assert!(entries(Some("application/x-ndjson"), unterminated.as_bytes(), None).is_err());
    }

    #[test]
    fn json_value_and_absent_timestamp() {
        let body = r#"[{"id":"t-0-1","topic":"t","partition":0,"offset":1,"value":{"a":[1,2]}}]"#;
        assert_eq!(
            entries(Some("application/json"), body.as_bytes(), None),
            Ok(vec![Entry {
                seq: None,
                timestamp_ms: None
            }])
        );
    }

    #[test]
    fn escaped_slash_in_base64() {
        // `?` encodes to `/` in base64; a JSON writer may escape it as `\/`.
        let encoded = b64(&format!("7|??????{}", "x".repeat(40)));
        assert!(encoded[..16].contains('/'));
        let escaped = encoded.replace('/', "\\/");
        let body = format!(r#"[{{"timestamp":5,"value_base64":"{escaped}"}}]"#);
        assert_eq!(
            entries(Some("application/json"), body.as_bytes(), None),
            Ok(vec![entry(7, 5)])
        );
    }

    #[test]
    fn short_value() {
        let body = format!(r#"[{{"timestamp":5,"value_base64":"{}"}}]"#, b64("3|x"));
        assert_eq!(
            entries(Some("application/json"), body.as_bytes(), None),
            Ok(vec![entry(3, 5)])
        );
    }

    #[test]
    fn cloudevents_batch() {
        let body = format!(
            r#"[{{"specversion":"1.0","id":"bench-1-5","source":"/kafka/bench","type":"t","time":"2023-11-14T22:13:20.123Z","data_base64":"{}"}}]"#,
            b64(&value(5))
        );
        assert_eq!(
            entries(
                Some("application/cloudevents-batch+json; charset=utf-8"),
                body.as_bytes(),
                None
            ),
            Ok(vec![entry(5, 1_700_000_000_123)])
        );
        assert_eq!(rfc3339_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_utc_ms("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500)
        );
        assert_eq!(
            rfc3339_utc_ms("2024-02-29T23:59:59.999Z"),
            Some(1_709_251_199_999)
        );
        assert_eq!(rfc3339_utc_ms("2024-02-29T23:59:59+01:00"), None);
    }

    #[test]
    fn malformed_batches() {
        for (content_type, body) in [
            ("application/json", "[{\"timestamp\":1,"),
            ("application/json", "[{\"timestamp\":\"soon\"}]"),
            ("application/x-ndjson", "{\"timestamp\":1}\nnot json\n"),
            ("multipart/form-data; boundary=b", "--b\r\n\r\n1|x"),
            ("multipart/form-data", "--b\r\n\r\n1|x\r\n--b--\r\n"),
        ] {
            assert!(
                entries(Some(content_type), body.as_bytes(), None).is_err(),
                "{content_type}: {body}"
            );
        }
    }

    #[test]
    fn multipart_parts() {
        // As Go's mime/multipart writes it (Benthos): no preamble, CRLF line ends.
        let boundary = "8d1b1e0c3f5a";
        let parts = [value(1), value(2), value(1), "no sequence".to_string()];
        let mut body = String::new();
        for part in &parts {
            body += &format!(
                "--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n{part}\r\n"
            );
        }
        body += &format!("--{boundary}--\r\n");
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let seqs: Vec<_> = entries(Some(&content_type), body.as_bytes(), Some(9))
            .expect("parses")
            .iter()
            .map(|e| (e.seq, e.timestamp_ms))
            .collect();
        assert_eq!(
            seqs,
            [
                (Some(1), Some(9)),
                (Some(2), Some(9)),
                (Some(1), Some(9)),
                (None, Some(9))
            ]
        );
        // A preamble, a quoted boundary, a part without headers.
        let body = format!(
            "preamble\r\n--{boundary}\r\n\r\n{}\r\n--{boundary}--",
            value(4)
        );
        let content_type = format!("multipart/mixed; boundary=\"{boundary}\"");
        assert_eq!(
            entries(Some(&content_type), body.as_bytes(), None),
            Ok(vec![Entry {
                seq: Some(4),
                timestamp_ms: None
            }])
        );
    }

    #[test]
    fn single_records() {
        assert_eq!(
            entries(
                Some("application/octet-stream"),
                value(17).as_bytes(),
                Some(3)
            ),
            Ok(vec![entry(17, 3)])
        );
        // A JSON single-record body (not an array) is one record.
        let structured = format!(
            r#"{{"specversion":"1.0","data_base64":"{}"}}"#,
            b64(&value(8))
        );
        assert_eq!(
            entries(Some("application/json"), structured.as_bytes(), Some(4)),
            Ok(vec![entry(8, 4)])
        );
        assert_eq!(
            entries(None, b"garbage", None),
            Ok(vec![Entry {
                seq: None,
                timestamp_ms: None
            }])
        );
    }
}
