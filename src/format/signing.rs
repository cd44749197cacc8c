//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! "{webhook-id}.{webhook-timestamp}.{body}")>`, one `v1,` entry per key (space-separated) so
//! receivers can rotate secrets. Pure, no I/O; the keys never leave this type.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::Sha256;

use crate::config::SigningKey;

pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The signing keys, each prepared once as an HMAC state (cloned per signature).
#[derive(Clone)]
pub struct Signer {
    macs: Vec<Hmac<Sha256>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys, <redacted>)", self.macs.len())
    }
}

impl Signer {
    /// `None` without keys (signing off).
    pub fn new(keys: &[SigningKey]) -> Option<Signer> {
        let macs: Vec<_> = keys
            .iter()
            .filter_map(|key| Hmac::<Sha256>::new_from_slice(key.bytes()).ok())
            .collect();
        (!macs.is_empty()).then_some(Signer { macs })
    }

    /// The `webhook-signature` value for `body` sent as message `id` at `timestamp` (seconds
    /// since the epoch): the signed bytes are exactly `id`, `.`, `timestamp`, `.`, `body`.
    pub fn signature(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderValue {
        let timestamp = timestamp.to_string();
        let mut value = String::with_capacity(self.macs.len() * 48);
        for mac in &self.macs {
            let mut mac = mac.clone();
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str("v1,");
            value.push_str(&BASE64.encode(mac.finalize().into_bytes()));
        }
        // "v1," and base64 are always valid header characters.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> SigningKey {
        SigningKey::new(BASE64.decode(secret).unwrap())
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The test vector of the Standard Webhooks reference libraries.
        let signer = Signer::new(&[key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).unwrap();
        let signature = signer.signature(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn one_signature_per_key_and_none_without_keys() {
        let a = key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let b = key("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=");
        let both = Signer::new(&[a.clone(), b.clone()]).unwrap();
        let value = both.signature("id", 1, b"body");
        let parts: Vec<&str> = value.to_str().unwrap().split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            Signer::new(&[a]).unwrap().signature("id", 1, b"body")
        );
        assert_eq!(
            parts[1],
            Signer::new(&[b]).unwrap().signature("id", 1, b"body")
        );
        assert_ne!(
            parts[0],
            both.signature("id", 2, b"body")
                .to_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        );
        assert!(Signer::new(&[]).is_none());
        assert!(!format!("{both:?}").contains("MfKQ"));
    }
}
