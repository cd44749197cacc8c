//! Fuzz target `pem`: arbitrary bytes as the endpoint's TLS files (`delivery.tls.ca_file`,
//! `cert_file`, `key_file`) through `delivery::tls::client_config_with`, the same parsing and
//! checks `--check-config` and start-up run on the files: PEM certificates added as trusted
//! roots, a PEM certificate chain and private key as the client identity. Invariants:
//!
//! - `Ok` or an error, never a panic;
//! - the error never quotes a file's content (tls.rs: "a private key must not end up in a
//!   log line"): no base64 line of the given bytes (16 characters or more of the PEM body's
//!   alphabet, what a key's lines are) appears in its text.
//!
//! Input: one flag byte, then up to three files separated by `\n==\n`: the CA bundle, the
//! certificate chain, the key. Flag bit 0: `ca_file` is set (first part); bit 1: the client
//! identity is set (the next two parts; a missing part is an empty file).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use kafka_webhook_sidecar::config::{ConfigError, TlsSettings};
use kafka_webhook_sidecar::delivery::tls::client_config_with;
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n==\n";

fn quoted_lines(bytes: &[u8]) -> impl Iterator<Item = String> + '_ {
    bytes
        .split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line).trim().to_string())
        .filter(|line| {
            line.len() >= 16
                && line
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let parts = common::split(rest, SEPARATOR);
    let part = |index: usize| parts.get(index).copied().unwrap_or_default();
    let ca = PathBuf::from("/fuzz/ca.crt");
    let cert = PathBuf::from("/fuzz/tls.crt");
    let key = PathBuf::from("/fuzz/tls.key");
    let settings = TlsSettings {
        ca_file: (flags & 1 != 0).then(|| ca.clone()),
        client_identity: (flags & 2 != 0).then(|| (cert.clone(), key.clone())),
        server_name: None,
        over_tls: false,
    };
    let files = [(ca, part(0)), (cert, part(1)), (key, part(2))];
    let read = |_key: &str, path: &Path| -> Result<Vec<u8>, ConfigError> {
        let (_, bytes) = files
            .iter()
            .find(|(file, _)| file == path)
            .expect("only the three files are read");
        Ok(bytes.to_vec())
    };
    let Err(error) = client_config_with(&settings, read) else {
        return;
    };
    let text = error.to_string();
    for (_, bytes) in &files {
        for line in quoted_lines(bytes) {
            assert!(
                !text.contains(&line),
                "the error quotes the file's line {line:?}: {text}"
            );
        }
    }
});
