//! How record bytes go into a JSON body: as JSON, only when they are one complete JSON
//! document that the strictest parser accepts; otherwise the caller writes them as base64.
//! Every writer of a JSON body (batch `json` and `ndjson` envelopes, CloudEvents structured
//! mode and the CloudEvents batch) decides here. Pure, no I/O.
//!
//! *Strict* means what `serde_json` accepts when it builds a value: valid UTF-8 everywhere
//! (also inside strings, which skipping over a value does not check), escapes that decode to
//! Unicode scalar values (no lone surrogate such as `\ud800`), no `NaN`, no leading zeros,
//! numbers within `f64`'s range, no byte order mark, nothing after the document but
//! whitespace, at most 128 levels of nesting. A body built only of such documents and of text the writers escape themselves
//! parses everywhere.
//!
//! In a body of lines (NDJSON) a document that spans several lines is re-emitted on one: a
//! raw CR or LF in a valid document can only be whitespace between tokens (inside strings
//! they must be escaped), so each is replaced by a space. The value stays the same JSON
//! value, byte for byte apart from those spaces, and is still JSON, not base64.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
}

/// One strict JSON document, whitespace around it allowed (see the module doc).
pub fn is_strict_json(bytes: &[u8]) -> bool {
    // An empty value is no document; a leading byte order mark is refused by the
    // deserializer itself. UTF-8 is checked once over the whole text (per string it costs
    // more), then the text is read as `str`.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    if text.is_empty() {
        return false;
    }
    if needs_decoding(bytes) {
        serde_json::from_str::<Strict>(text).is_ok()
    } else {
        // Skipping checks the grammar (escapes, control characters, number syntax); what it
        // leaves unchecked (escapes' code points, number ranges, depth) cannot occur here.
        serde_json::from_str::<IgnoredAny>(text).is_ok()
    }
}

/// Whether skipping over the document could accept what decoding it refuses: an escape
/// (`\u` may be a lone surrogate), a number out of `f64`'s range, which needs an exponent
/// (a digit followed by `e` or `E`) or over 300 digits (a run that long fills one of the
/// 64-byte chunks the text splits into), or nesting deeper than 128 levels (skipping has no
/// limit), which needs more than 128 opening brackets. Any of them and the careful reading
/// runs; the checks are scans that SIMD or a first-byte test keep at a fraction of
/// skipping's cost.
fn needs_decoding(bytes: &[u8]) -> bool {
    memchr::memchr(b'\\', bytes).is_some()
        || memchr::memchr2_iter(b'[', b'{', bytes).nth(128).is_some()
        || memchr::memchr2_iter(b'e', b'E', bytes)
            .any(|at| at > 0 && bytes[at - 1].is_ascii_digit())
        || bytes
            .chunks_exact(64)
            .any(|chunk| chunk[0].is_ascii_digit() && chunk.iter().all(u8::is_ascii_digit))
}

/// A JSON value read through and thrown away, with every string and number decoded (escapes
/// and ranges checked) but nothing allocated for the tree: `IgnoredAny` skips both unchecked.
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
            b"[1e10,2E-5,-0.5e+300,\"1e999 in a string\",true,false]",
            "9".repeat(300).as_bytes(),
            format!("[\"{}\"]", "7".repeat(500)).as_bytes(),
        ] {
            assert!(is_strict_json(good), "{:?}", String::from_utf8_lossy(good));
            assert!(strict_value(good), "{:?}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn refuses_what_a_strict_parser_refuses() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        // Out of f64's range: an exponent, or a long integer wherever it starts.
        let long = "9".repeat(400);
        let long_offset = format!("[ {long}]");
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
            b"1e400",
            b"[-1E+309]",
            long.as_bytes(),
            long_offset.as_bytes(),
        ] {
            assert!(!is_strict_json(bad), "{:?}", String::from_utf8_lossy(bad));
            assert!(!strict_value(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn one_line_layout_turns_line_breaks_into_spaces() {
        let written = |bytes: &[u8], layout| {
            let mut out = b"x".to_vec();
            document(bytes, layout).unwrap().write_to(&mut out);
            out.split_off(1)
        };
        let pretty = b"{\r\n  \"a\": [1,\n 2],\n  \"s\": \"x\\ny\"\n}\n";
        let one_line = written(pretty, Layout::OneLine);
        assert_eq!(one_line.len(), pretty.len());
        assert!(!one_line.contains(&b'\n') && !one_line.contains(&b'\r'));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&one_line).unwrap(),
            serde_json::from_slice::<serde_json::Value>(pretty).unwrap()
        );

        // Anywhere else, and without line breaks, the bytes go as they are.
        assert_eq!(written(pretty, Layout::Json), pretty);
        assert_eq!(written(br#"{"a": 1}"#, Layout::OneLine), br#"{"a": 1}"#);
        assert!(document(b"\"\xff\"", Layout::OneLine).is_none());
    }
}
