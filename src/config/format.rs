//! The keys that shape what the endpoint receives — `delivery.format`, `delivery.cloudevents`,
//! `delivery.signing` — and their validation into [`FormatSettings`] (secrets decoded once,
//! here; a bad one is refused naming its key, never echoing it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
pub use super::secret::Secret;
use super::settings::{CloudEventsSettings, FormatSettings, SigningKey};
use super::{invalid, ConfigError};

/// The encoding of a record into a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The value byte for byte as the body; key, metadata and Kafka headers as HTTP headers.
    #[default]
    Raw,
    /// A CloudEvent in HTTP binary mode: attributes as `ce-*` headers, data as the body.
    CloudeventsBinary,
    /// A CloudEvent in HTTP structured mode: one `application/cloudevents+json` document.
    CloudeventsStructured,
}

/// Attributes of the CloudEvents made from records that are not CloudEvents already (a
/// record that is one, in the Kafka binding's binary or structured mode, keeps its own).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudEventsConfig {
    /// `source` of wrapped records, a URI-reference; `{topic}` is replaced by the record's
    /// topic. With the `id` (`{topic}-{partition}-{offset}`) it identifies the record.
    #[serde(default = "defaults::cloudevents_source")]
    pub source: String,
    /// `type` of wrapped records. The default is the type Knative's KafkaSource gives.
    #[serde(rename = "type", default = "defaults::cloudevents_type")]
    pub event_type: String,
}

impl Default for CloudEventsConfig {
    fn default() -> Self {
        Self {
            source: defaults::cloudevents_source(),
            event_type: defaults::cloudevents_type(),
        }
    }
}

/// Standard Webhooks signing (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Off
/// while no secret is given; with several, each signs (`v1,…` signatures separated by a
/// space), so a receiver can rotate: add the new secret, switch the receiver, remove the old.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// Secrets written `whsec_<base64 of 24 to 64 random bytes>`; use `${VAR}` to take them
    /// from the environment. Never logged.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// A file holding more secrets, one per line (blank lines and `#` comments ignored),
    /// e.g. a mounted Kubernetes Secret. Read when the config is loaded.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub secrets_file: Option<PathBuf>,
}

/// Decoded secret length bounds recommended by Standard Webhooks.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// More secrets than a rotation needs is a mistake (and costs an HMAC each per attempt).
const MAX_SECRETS: usize = 10;

/// Validates the format keys. `headers` are `delivery.headers` as written: a static header
/// that would replace what the format or the signature sets is refused, naming it.
pub(super) fn validate(
    format: Format,
    cloudevents: &CloudEventsConfig,
    signing: &SigningConfig,
    headers: &BTreeMap<String, String>,
) -> Result<FormatSettings, ConfigError> {
    let cloudevents = cloudevents.validate()?;
    let header = |matches: fn(&str) -> bool| {
        headers
            .keys()
            .find(|name| matches(&name.to_ascii_lowercase()))
            .map(|name| format!("delivery.headers.{name}"))
    };
    if format != Format::Raw {
        if let Some(key) = header(|name| name == "content-type") {
            return Err(invalid(
                &key,
                "would replace the CloudEvents content type (datacontenttype, or application/cloudevents+json); remove it, or set delivery.content_type for records without a content-type header",
            ));
        }
        if let Some(key) = header(|name| name.starts_with("ce-")) {
            return Err(invalid(
                &key,
                "would replace a CloudEvents attribute; remove it (attributes come from the record, or from delivery.cloudevents)",
            ));
        }
    }
    let keys = signing.keys()?;
    if !keys.is_empty() {
        if let Some(key) = header(|name| name.starts_with("webhook-")) {
            return Err(invalid(
                &key,
                "would replace a Standard Webhooks header set by delivery.signing; remove it",
            ));
        }
    }
    Ok(FormatSettings {
        format,
        cloudevents,
        signing: keys,
    })
}

impl CloudEventsConfig {
    fn validate(&self) -> Result<CloudEventsSettings, ConfigError> {
        let printable = |text: &str| {
            !text.is_empty() && text.chars().all(|c| !c.is_control() && !c.is_whitespace())
        };
        if !printable(&self.source) {
            return Err(invalid(
                "delivery.cloudevents.source",
                "must be a non-empty URI-reference without spaces, e.g. /kafka/{topic}",
            ));
        }
        if self.event_type.is_empty() || self.event_type.chars().any(char::is_control) {
            return Err(invalid(
                "delivery.cloudevents.type",
                "must be non-empty text without control characters, e.g. dev.knative.kafka.event",
            ));
        }
        Ok(CloudEventsSettings {
            source: self.source.clone(),
            event_type: self.event_type.clone(),
        })
    }
}

impl SigningConfig {
    /// The decoded keys: `secrets` in order, then the file's. Empty = signing off.
    fn keys(&self) -> Result<Vec<SigningKey>, ConfigError> {
        let mut keys = Vec::new();
        for (index, secret) in self.secrets.iter().enumerate() {
            keys.push(decode_secret(
                &secret.0,
                &format!("delivery.signing.secrets[{index}]"),
            )?);
        }
        if let Some(path) = &self.secrets_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                invalid(
                    "delivery.signing.secrets_file",
                    format!(
                        "cannot read {}: {error}; mount the file or fix the path",
                        path.display()
                    ),
                )
            })?;
            let before = keys.len();
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                keys.push(decode_secret(
                    line,
                    &format!("delivery.signing.secrets_file (line {})", index + 1),
                )?);
            }
            if keys.len() == before {
                return Err(invalid(
                    "delivery.signing.secrets_file",
                    format!(
                        "{} holds no secret; write one whsec_… secret per line",
                        path.display()
                    ),
                ));
            }
        }
        if keys.len() > MAX_SECRETS {
            return Err(invalid(
                "delivery.signing.secrets",
                format!("{} secrets given; at most {MAX_SECRETS}", keys.len()),
            ));
        }
        Ok(keys)
    }
}

/// `whsec_` + standard base64 of 24 to 64 bytes. The error names `key` and never the value.
fn decode_secret(secret: &str, key: &str) -> Result<SigningKey, ConfigError> {
    let what = "is not a Standard Webhooks secret: write whsec_ followed by the base64 of 24 to 64 random bytes (e.g. whsec_$(head -c 32 /dev/urandom | base64))";
    let encoded = secret
        .trim()
        .strip_prefix("whsec_")
        .ok_or_else(|| invalid(key, what))?;
    let bytes = BASE64.decode(encoded).map_err(|_| invalid(key, what))?;
    if !SECRET_BYTES.contains(&bytes.len()) {
        return Err(invalid(key, what));
    }
    Ok(SigningKey::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signing(secrets: &[&str]) -> SigningConfig {
        SigningConfig {
            secrets: secrets.iter().map(|s| Secret(s.to_string())).collect(),
            secrets_file: None,
        }
    }

    fn check(signing: &SigningConfig) -> Result<FormatSettings, ConfigError> {
        validate(
            Format::Raw,
            &CloudEventsConfig::default(),
            signing,
            &BTreeMap::new(),
        )
    }

    fn key_of(error: ConfigError) -> String {
        match error {
            ConfigError::Invalid { key, message } => {
                assert!(!message.contains("c2VjcmV0"), "secret echoed: {message}");
                key
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn secrets_decode_in_order_and_never_print() {
        let settings = check(&signing(&[GOOD, GOOD])).unwrap();
        assert_eq!(settings.signing.len(), 2);
        assert_eq!(settings.signing[0].bytes().len(), 24);
        assert!(!format!("{settings:?}").contains("MfKQ"));
        assert!(!format!("{:?}", signing(&[GOOD])).contains("MfKQ"));
        assert!(check(&signing(&[])).unwrap().signing.is_empty());
    }

    #[test]
    fn malformed_secrets_are_refused_naming_the_key() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // no prefix
            "whsec_not base64!",                // not base64
            "whsec_c2VjcmV0",                   // 6 bytes: too short
            "",                                 // empty (an unset ${VAR:-})
        ] {
            let error = check(&signing(&[GOOD, bad])).unwrap_err();
            assert_eq!(key_of(error), "delivery.signing.secrets[1]", "{bad:?}");
        }
    }

    #[test]
    fn secrets_file_lines_add_keys() {
        let path = std::env::temp_dir().join(format!("kws-secrets-{}", std::process::id()));
        std::fs::write(&path, format!("# rotation\n{GOOD}\n\n{GOOD}\n")).unwrap();
        let mut config = signing(&[GOOD]);
        config.secrets_file = Some(path.clone());
        assert_eq!(check(&config).unwrap().signing.len(), 3);
        std::fs::write(&path, "# nothing\n").unwrap();
        assert_eq!(
            key_of(check(&config).unwrap_err()),
            "delivery.signing.secrets_file"
        );
        std::fs::write(&path, "whsec_c2VjcmV0\n").unwrap();
        assert_eq!(
            key_of(check(&config).unwrap_err()),
            "delivery.signing.secrets_file (line 1)"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            key_of(check(&config).unwrap_err()),
            "delivery.signing.secrets_file"
        );
    }

    #[test]
    fn static_headers_cannot_replace_format_or_signature_headers() {
        let header = |name: &str| BTreeMap::from([(name.to_string(), "x".to_string())]);
        let cloudevents = CloudEventsConfig::default();
        for format in [Format::CloudeventsBinary, Format::CloudeventsStructured] {
            for name in ["Content-Type", "ce-type"] {
                let error =
                    validate(format, &cloudevents, &signing(&[]), &header(name)).unwrap_err();
                assert_eq!(key_of(error), format!("delivery.headers.{name}"));
            }
        }
        // Raw keeps today's behaviour: a static Content-Type wins.
        assert!(validate(
            Format::Raw,
            &cloudevents,
            &signing(&[]),
            &header("content-type")
        )
        .is_ok());
        let error = validate(
            Format::Raw,
            &cloudevents,
            &signing(&[GOOD]),
            &header("webhook-id"),
        )
        .unwrap_err();
        assert_eq!(key_of(error), "delivery.headers.webhook-id");
        assert!(validate(
            Format::Raw,
            &cloudevents,
            &signing(&[]),
            &header("webhook-id")
        )
        .is_ok());
    }

    #[test]
    fn cloudevents_attributes_must_be_usable() {
        for (source, event_type, key) in [
            ("", "t", "delivery.cloudevents.source"),
            ("/a b", "t", "delivery.cloudevents.source"),
            ("/kafka/{topic}", "", "delivery.cloudevents.type"),
            ("/kafka/{topic}", "a\nb", "delivery.cloudevents.type"),
        ] {
            let config = CloudEventsConfig {
                source: source.into(),
                event_type: event_type.into(),
            };
            let error = validate(
                Format::CloudeventsBinary,
                &config,
                &signing(&[]),
                &BTreeMap::new(),
            )
            .unwrap_err();
            assert_eq!(key_of(error), key);
        }
    }
}
