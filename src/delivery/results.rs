//! Per-entry results of a batch, read from a 2xx answer's body. Pure, no I/O.
//!
//! - An empty body (or only whitespace) acknowledges every entry.
//! - A JSON object with a `statuses` array settles each entry on its own, in Dapr's
//!   bulk-subscribe response shape: `{"statuses":[{"entryId":"orders-3-42","status":"SUCCESS"}]}`
//!   with `SUCCESS`, `RETRY` or `DROP` (any case). An entry missing from the list counts as
//!   RETRY, an unknown status as RETRY, an `entryId` naming no entry of the batch is ignored.
//! - Any other body (not JSON, JSON that is not an object, or an object without `statuses`)
//!   is a plain 2xx: every entry is acknowledged.
//! - A `statuses` member that is not such a list makes the whole answer unreadable: the batch
//!   is retried like a retryable failure.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The result the endpoint gave one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Success,
    Retry,
    Drop,
}

/// What a 2xx body says about a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Results {
    /// Every entry acknowledged.
    All,
    /// Results by entry id (in the body's order; an id may repeat, the last one wins).
    PerEntry(Vec<(String, EntryStatus)>),
    /// `statuses` present but not readable.
    Invalid(String),
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    statuses: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "entryId")]
    entry_id: String,
    status: String,
}

/// Reads a 2xx answer's body.
pub fn parse(body: &[u8]) -> Results {
    // serde reads a struct from a JSON array too (`[[…]]` as `{"statuses":[…]}`): only an
    // object is a result document (found by the `answers` fuzz target).
    if !is_object(body) {
        return Results::All;
    }
    let Ok(document) = serde_json::from_slice::<Document>(body) else {
        return Results::All;
    };
    let Some(statuses) = document.statuses else {
        return Results::All;
    };
    match entries(statuses.get()) {
        Ok(entries) => Results::PerEntry(
            entries
                .into_iter()
                .map(|entry| (entry.entry_id, status(&entry.status)))
                .collect(),
        ),
        Err(error) => Results::Invalid(format!(
            "`statuses` must be a list of {{\"entryId\": string, \"status\": string}}: {error}"
        )),
    }
}

/// The entries of a `statuses` list, each an object (not an array read as one).
fn entries(list: &str) -> Result<Vec<Entry>, String> {
    let raw: Vec<&RawValue> = serde_json::from_str(list).map_err(|error| error.to_string())?;
    raw.into_iter()
        .enumerate()
        .map(|(index, entry)| {
            if !is_object(entry.get().as_bytes()) {
                return Err(format!("entry {index} is not an object"));
            }
            serde_json::from_str(entry.get()).map_err(|error| format!("entry {index}: {error}"))
        })
        .collect()
}

/// Whether the first non-whitespace byte opens a JSON object.
fn is_object(json: &[u8]) -> bool {
    json.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

fn status(text: &str) -> EntryStatus {
    if text.eq_ignore_ascii_case("success") {
        EntryStatus::Success
    } else if text.eq_ignore_ascii_case("drop") {
        EntryStatus::Drop
    } else {
        EntryStatus::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_answers_acknowledge_everything() {
        for body in [
            &b""[..],
            b"  \n",
            b"OK",
            b"<html>thanks</html>",
            b"{\"ok\":true}",
            b"[1,2]",
            // Arrays, which serde would read as the document's one field (fuzz target
            // `answers`): `[[]]` retried every entry as missing, `["ok"]` the whole batch.
            b"[[]]",
            b"[\"ok\"]",
            br#"[[{"entryId":"t-0-1","status":"DROP"}]]"#,
        ] {
            assert_eq!(parse(body), Results::All, "{body:?}");
        }
    }

    #[test]
    fn dapr_statuses_settle_each_entry() {
        let body = br#"{"statuses":[{"entryId":"t-0-1","status":"SUCCESS"},
            {"entryId":"t-0-2","status":"RETRY"},{"entryId":"t-0-3","status":"drop"},
            {"entryId":"t-0-4","status":"LATER"}]}"#;
        assert_eq!(
            parse(body),
            Results::PerEntry(vec![
                ("t-0-1".into(), EntryStatus::Success),
                ("t-0-2".into(), EntryStatus::Retry),
                ("t-0-3".into(), EntryStatus::Drop),
                ("t-0-4".into(), EntryStatus::Retry),
            ])
        );
        assert_eq!(parse(br#"{"statuses":[]}"#), Results::PerEntry(Vec::new()));
    }

    #[test]
    fn malformed_statuses_are_unreadable() {
        for body in [
            &br#"{"statuses":"all good"}"#[..],
            br#"{"statuses":[{"entryId":7,"status":"SUCCESS"}]}"#,
            br#"{"statuses":[{"status":"SUCCESS"}]}"#,
            // An entry written as an array is not `{"entryId", "status"}` either.
            br#"{"statuses":[["t-0-1","SUCCESS"]]}"#,
        ] {
            assert!(matches!(parse(body), Results::Invalid(_)), "{body:?}");
        }
    }
}
