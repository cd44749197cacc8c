//! The `delivery.auth:` section (credentials sent to the endpoint that are not static
//! headers) and its pure validation into [`AuthSettings`]. The files are read by
//! `delivery::auth`.

use std::path::PathBuf;

use http::header::{HeaderMap, AUTHORIZATION};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::tls::path;
use super::{invalid, ConfigError};

/// Credentials for the endpoint that change while the sidecar runs. They are sent as the
/// `Authorization` header, which therefore must not also be set in `delivery.headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding a bearer token, sent as `Authorization: Bearer <token>`: e.g. a Kubernetes
    /// projected service-account token, which the kubelet rotates. Re-read when the file
    /// changes (checked at most once a second); surrounding whitespace is ignored. The token
    /// never appears in logs, errors or metrics.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
}

/// Validated `delivery.auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthSettings {
    /// No credentials beyond `delivery.headers`.
    #[default]
    None,
    /// `Authorization: Bearer <content of the file>`.
    BearerTokenFile(PathBuf),
}

impl AuthConfig {
    /// Checks the keys' shape; `headers` are the validated `delivery.headers`.
    pub(super) fn validate(&self, headers: &HeaderMap) -> Result<AuthSettings, ConfigError> {
        let Some(file) = path("delivery.auth.bearer_token_file", &self.bearer_token_file)? else {
            return Ok(AuthSettings::None);
        };
        if headers.contains_key(AUTHORIZATION) {
            return Err(invalid(
                "delivery.auth.bearer_token_file",
                "conflicts with delivery.headers.Authorization (both set Authorization); keep one",
            ));
        }
        Ok(AuthSettings::BearerTokenFile(file))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_file_excludes_a_static_authorization_header() {
        let config = AuthConfig {
            bearer_token_file: Some("/var/run/secrets/tokens/webhook".into()),
        };
        assert_eq!(
            config.validate(&HeaderMap::new()),
            Ok(AuthSettings::BearerTokenFile(
                "/var/run/secrets/tokens/webhook".into()
            ))
        );
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        match config.validate(&headers) {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "delivery.auth.bearer_token_file");
                assert!(message.contains("delivery.headers.Authorization"));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            AuthConfig::default().validate(&headers),
            Ok(AuthSettings::None)
        );
    }
}
