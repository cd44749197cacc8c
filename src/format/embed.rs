//! How record bytes go into a JSON body: as JSON, only when they are one complete JSON
//! document that the strictest parser accepts; otherwise the caller writes them as base64.
//! Every writer of a JSON body (batch `json` and `ndjson` envelopes, CloudEvents structured
//! mode and the CloudEvents batch) decides here. Pure, no I/O.
//!
//! *Strict* means what `serde_json` accepts when it builds a value: valid UTF-8 everywhere
//! (also inside strings, which skipping over a value does not check), escapes that decode to
//! Unicode scalar values (no lone surrogate such as `\ud800`), no `NaN`, no leading zeros,
//! no byte order mark, nothing after the document but whitespace, at most 128 levels of
//! nesting. A body built only of such documents and of text the writers escape themselves
//! parses everywhere.
//!
//! In a body of lines (NDJSON) a document that spans several lines is re-emitted on one: a
//! raw CR or LF in a valid document can only be whitespace between tokens (inside strings
//! they must be escaped), so each is replaced by a space. The value stays the same JSON
//! value, byte for byte apart from those spaces, and is still JSON, not base64.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Where a document is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Anywhere in a JSON document: line breaks between tokens are fine.
    Json,
    /// In a body of lines (NDJSON): the document must not contain a line break.
    OneLine,
}

/// Bytes checked to be one strict JSON document, ready to be written.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a> {
    bytes: &'a [u8],
    /// A line break to replace on the way out (only for [`Layout::OneLine`]).
    rewrite: bool,
}

/// `bytes` as a document to embed in `layout`, or `None` when they are not one strict JSON
/// document (the caller then writes them as base64).
pub fn document(bytes: &[u8], layout: Layout) -> Option<Document<'_>> {
    if !is_strict_json(bytes) {
        return None;
    }
    let rewrite = layout == Layout::OneLine && memchr::memchr2(b'\n', b'\r', bytes).is_some();
    Some(Document { bytes, rewrite })
}

impl Document<'_> {
    /// Appends the document to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.bytes);
        if self.rewrite {
            for byte in &mut out[start..] {
                if *byte == b'\n' || *byte == b'\r' {
                    *byte = b' ';
                }
            }
        }
    }

    /// Whether [`write_to`](Self::write_to) writes the bytes exactly as they are.
    pub fn is_verbatim(&self) -> bool {
        !self.rewrite
    }
}

/// One strict JSON document, whitespace around it allowed (see the module doc).
pub fn is_strict_json(bytes: &[u8]) -> bool {
    // An empty value is no document; a leading byte order mark is refused by the
    // deserializer itself.
    !bytes.is_empty() && serde_json::from_slice::<Strict>(bytes).is_ok()
}

/// A JSON value read through and thrown away, with every string decoded (UTF-8 checked,
/// escapes checked) but nothing allocated for the tree: `serde::de::IgnoredAny` skips
/// strings without either check.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        // Keys are decoded like any string.
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict_value(bytes: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    }

    #[test]
    fn accepts_every_kind_of_json_value() {
        for good in [
            &br#"{"a":[1,-2.5e3,true,false,null,"x\u00e9\ud83d\ude00"]}"#[..],
            b" [] ",
            b"\"caf\xc3\xa9\"",
            b"0",
            b"-0.0",
            b"\t{\r\n \"a\" : {}\r\n}\n",
            "\"line\u{2028}sep\"".as_bytes(),
            br#"{"a":1,"a":2}"#,
            b"123456789012345678901234567890",
        ] {
            assert!(is_strict_json(good), "{:?}", String::from_utf8_lossy(good));
            assert!(strict_value(good), "{:?}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn refuses_what_a_strict_parser_refuses() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            &b""[..],
            b"   ",
            b"\"\xff\xfe\"",
            b"{\"\xc3\":1}",
            br#""\ud800""#,
            br#""\udc00 tail""#,
            br#"["\ud800\u0041"]"#,
            br#"{"a":1}{"b":2}"#,
            b"1 2",
            b"01",
            b"NaN",
            b"[1,]",
            b"{\"a\":1",
            b"\xef\xbb\xbf{}",
            b"\"tab\there\"",
            b"\"new\nline\"",
            b"'single'",
            deep.as_bytes(),
        ] {
            assert!(!is_strict_json(bad), "{:?}", String::from_utf8_lossy(bad));
            assert!(!strict_value(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn one_line_layout_turns_line_breaks_into_spaces() {
        let pretty = b"{\r\n  \"a\": [1,\n 2],\n  \"s\": \"x\\ny\"\n}\n";
        let doc = document(pretty, Layout::OneLine).unwrap();
        assert!(!doc.is_verbatim());
        let mut out = b"x".to_vec();
        doc.write_to(&mut out);
        let written = &out[1..];
        assert_eq!(written.len(), pretty.len());
        assert!(!written.contains(&b'\n') && !written.contains(&b'\r'));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(written).unwrap(),
            serde_json::from_slice::<serde_json::Value>(pretty).unwrap()
        );

        // Anywhere else, and without line breaks, the bytes go as they are.
        let doc = document(pretty, Layout::Json).unwrap();
        assert!(doc.is_verbatim());
        let mut out = Vec::new();
        doc.write_to(&mut out);
        assert_eq!(out, pretty);
        assert!(document(br#"{"a": 1}"#, Layout::OneLine)
            .unwrap()
            .is_verbatim());
        assert!(document(b"\"\xff\"", Layout::OneLine).is_none());
    }
}
