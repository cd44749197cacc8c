//! The `delivery.auth:` section (credentials sent to the endpoint that are not static
//! headers: a bearer token file, OAuth2 client credentials) and its pure validation into
//! [`AuthSettings`]. The token file is read by `delivery::auth`, tokens are fetched by
//! `delivery::oauth2`.

use std::net::IpAddr;
use std::path::PathBuf;

use http::header::{HeaderMap, AUTHORIZATION};
use http::Uri;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::secret::Secret;
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
    /// OAuth2 client credentials grant (RFC 6749 §4.4): an access token is fetched from
    /// `token_url`, cached, refreshed shortly before it expires (`expires_in`), and sent as
    /// `Authorization: Bearer <token>`. A 401 from the endpoint fetches a new token once and
    /// repeats the request once; a failed token request counts as a failed attempt (retried
    /// with backoff). Not together with `bearer_token_file`.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
}

/// OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint. `https://`; `http://` only to a loopback address (the client secret
    /// is sent to it).
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, sent with HTTP Basic authentication (`client_secret_basic`). Give it
    /// as `${VAR}` from a Secret; it never appears in logs, errors or metrics.
    pub client_secret: Secret,
    /// Scopes requested (sent space-separated as `scope`); none by default.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Validated `delivery.auth.oauth2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Settings {
    pub token_uri: Uri,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
}

/// Validated `delivery.auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthSettings {
    /// No credentials beyond `delivery.headers`.
    #[default]
    None,
    /// `Authorization: Bearer <content of the file>`.
    BearerTokenFile(PathBuf),
    /// `Authorization: Bearer <token from the client credentials grant>`.
    OAuth2(OAuth2Settings),
}

impl AuthConfig {
    /// Checks the keys' shape; `headers` are the validated `delivery.headers`.
    pub(super) fn validate(&self, headers: &HeaderMap) -> Result<AuthSettings, ConfigError> {
        let file = path("delivery.auth.bearer_token_file", &self.bearer_token_file)?;
        let (key, settings) = match (file, &self.oauth2) {
            (None, None) => return Ok(AuthSettings::None),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "delivery.auth.oauth2",
                    "conflicts with delivery.auth.bearer_token_file; keep one",
                ))
            }
            (Some(file), None) => (
                "delivery.auth.bearer_token_file",
                AuthSettings::BearerTokenFile(file),
            ),
            (None, Some(oauth2)) => (
                "delivery.auth.oauth2",
                AuthSettings::OAuth2(oauth2.validate()?),
            ),
        };
        if headers.contains_key(AUTHORIZATION) {
            return Err(invalid(
                key,
                "conflicts with delivery.headers.Authorization (both set Authorization); keep one",
            ));
        }
        Ok(settings)
    }
}

impl OAuth2Config {
    fn validate(&self) -> Result<OAuth2Settings, ConfigError> {
        let key = "delivery.auth.oauth2.token_url";
        let uri: Uri = self.token_url.trim().parse().map_err(|_| {
            invalid(
                key,
                "is not a valid URL; write it like https://auth.example.com/oauth2/token",
            )
        })?;
        let host = uri.host().unwrap_or_default();
        match uri.scheme_str() {
            Some("https") if !host.is_empty() => {}
            Some("http") if is_loopback(host) => {}
            Some("http") => {
                return Err(invalid(
                    key,
                    "must be https:// (http:// only to a loopback address): the client secret is sent to it",
                ))
            }
            _ => {
                return Err(invalid(
                    key,
                    "must be an https:// URL with a host, e.g. https://auth.example.com/oauth2/token",
                ))
            }
        }
        if uri
            .authority()
            .is_some_and(|authority| authority.as_str().contains('@'))
        {
            return Err(invalid(
                key,
                "must not carry credentials; use client_id and client_secret",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid(
                "delivery.auth.oauth2.client_id",
                "is empty; give the OAuth2 client id",
            ));
        }
        if self.client_secret.0.is_empty() {
            return Err(invalid(
                "delivery.auth.oauth2.client_secret",
                "is empty; give it as ${VAR} from a Secret",
            ));
        }
        if let Some(scope) = self.scopes.iter().find(|scope| {
            scope.is_empty()
                || !scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        }) {
            return Err(invalid(
                "delivery.auth.oauth2.scopes",
                format!(
                    "`{scope}` is not a scope (printable ASCII, no spaces, quotes or backslashes)"
                ),
            ));
        }
        Ok(OAuth2Settings {
            token_uri: uri,
            client_id: self.client_id.trim().to_string(),
            client_secret: self.client_secret.clone(),
            scopes: self.scopes.clone(),
        })
    }
}

/// `localhost` or a loopback IP address (`127.0.0.0/8`, `[::1]`).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_file_excludes_a_static_authorization_header() {
        let config = AuthConfig {
            bearer_token_file: Some("/var/run/secrets/tokens/webhook".into()),
            oauth2: None,
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

    fn oauth2(token_url: &str) -> OAuth2Config {
        OAuth2Config {
            token_url: token_url.into(),
            client_id: "orders-webhook".into(),
            client_secret: Secret("s3cr3t-value".into()),
            scopes: vec!["events.write".into()],
        }
    }

    fn key_of(result: Result<OAuth2Settings, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn token_url_is_https_unless_loopback() {
        for url in [
            "https://auth.example.com/oauth2/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9000/token",
        ] {
            assert!(oauth2(url).validate().is_ok(), "{url}");
        }
        for url in [
            "http://auth.example.com/token",
            "http://10.0.0.1/token",
            "ftp://auth.example.com/",
            "not a url",
            "https://user:pw@auth.example.com/token",
        ] {
            assert_eq!(
                key_of(oauth2(url).validate()),
                "delivery.auth.oauth2.token_url",
                "{url}"
            );
        }
    }

    #[test]
    fn oauth2_needs_id_secret_and_sane_scopes_and_excludes_other_authorization() {
        let mut config = oauth2("https://auth.example.com/token");
        config.client_secret = Secret(String::new());
        assert_eq!(
            key_of(config.validate()),
            "delivery.auth.oauth2.client_secret"
        );
        let mut config = oauth2("https://auth.example.com/token");
        config.scopes = vec!["two words".into()];
        assert_eq!(key_of(config.validate()), "delivery.auth.oauth2.scopes");

        let both = AuthConfig {
            bearer_token_file: Some("/t".into()),
            oauth2: Some(oauth2("https://auth.example.com/token")),
        };
        assert!(matches!(
            both.validate(&HeaderMap::new()),
            Err(ConfigError::Invalid { key, .. }) if key == "delivery.auth.oauth2"
        ));
        let config = AuthConfig {
            bearer_token_file: None,
            oauth2: Some(oauth2("https://auth.example.com/token")),
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(config.validate(&headers).is_err());
        assert!(
            !format!("{config:?}").contains("s3cr3t"),
            "Debug redacts the secret"
        );
    }
}
