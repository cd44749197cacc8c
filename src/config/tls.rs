//! The `delivery.tls:` section (trust and client identity toward an `https://` endpoint) and
//! its pure validation into [`TlsSettings`]. Reading the files is `delivery::tls`'s job, so
//! this stays free of I/O; `--check-config` does both.

use std::path::PathBuf;

use rustls::pki_types::ServerName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// TLS toward an `https://` endpoint. The endpoint's certificate is always verified, against
/// the bundled Mozilla roots, the system trust store and `ca_file`; there is no switch to turn
/// verification off. Every file is re-read when it changes on disk (cert-manager, SPIFFE and
/// Kubernetes Secret volumes rotate them): later connections use the new files, requests in
/// flight finish on their connection, nothing is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust in addition to the system store and the bundled
    /// roots, e.g. the private CA that signed the endpoint's certificate (`ca.crt` of a
    /// cert-manager Secret).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate chain (leaf first) presented to an endpoint that requires mTLS
    /// (`tls.crt` of a cert-manager Secret). Requires `key_file`.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1; `tls.key`). Must match the
    /// certificate. Its content never appears in logs or errors.
    #[serde(default)]
    pub key_file: Option<String>,
    /// DNS name (or IP address) to verify the endpoint's certificate against and to send as
    /// SNI, instead of the URL's host: for an endpoint reached by IP or through a tunnel.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Validated `delivery.tls`: paths to read and the name to verify.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    /// `(cert_file, key_file)`: both or neither.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub server_name: Option<ServerName<'static>>,
    /// Whether anything is reached over TLS (an `https://` endpoint or token URL). When not,
    /// the system trust store is not loaded (it costs ~1 MiB and a few ms for nothing).
    pub over_tls: bool,
}

impl TlsSettings {
    /// The files that are read (and watched for changes), with the key naming each.
    pub fn files(&self) -> Vec<(&'static str, PathBuf)> {
        let mut files = Vec::new();
        if let Some(path) = &self.ca_file {
            files.push(("delivery.tls.ca_file", path.clone()));
        }
        if let Some((cert, key)) = &self.client_identity {
            files.push(("delivery.tls.cert_file", cert.clone()));
            files.push(("delivery.tls.key_file", key.clone()));
        }
        files
    }
}

impl TlsConfig {
    fn is_set(&self) -> bool {
        *self != TlsConfig::default()
    }

    /// Checks the keys' shape and relations (the files are read by `delivery::tls`).
    /// `https` tells whether anything is reached over TLS (the endpoint or a token URL).
    pub(super) fn validate(&self, https: bool) -> Result<TlsSettings, ConfigError> {
        if self.is_set() && !https {
            return Err(invalid(
                "delivery.tls",
                "applies to https:// only (delivery.url or delivery.auth.oauth2.token_url); change delivery.url to https:// or remove delivery.tls",
            ));
        }
        let ca_file = path("delivery.tls.ca_file", &self.ca_file)?;
        let cert_file = path("delivery.tls.cert_file", &self.cert_file)?;
        let key_file = path("delivery.tls.key_file", &self.key_file)?;
        let client_identity = match (cert_file, key_file) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "delivery.tls.key_file",
                    "is required with delivery.tls.cert_file; give the PEM private key of the client certificate",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "delivery.tls.cert_file",
                    "is required with delivery.tls.key_file; give the PEM client certificate",
                ))
            }
        };
        let server_name = match &self.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.trim().to_string()).map_err(|_| {
                invalid(
                    "delivery.tls.server_name",
                    format!("`{name}` is not a DNS name or IP address"),
                )
            })?),
        };
        Ok(TlsSettings {
            ca_file,
            client_identity,
            server_name,
            over_tls: https,
        })
    }
}

/// A configured path: `None` when absent, an error when present but blank.
pub(super) fn path(key: &str, value: &Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Err(invalid(
            key,
            "is empty; give the path of the file or remove the key",
        )),
        Some(text) => Ok(Some(PathBuf::from(text.trim()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsConfig {
        TlsConfig {
            ca_file: ca.map(str::to_string),
            cert_file: cert.map(str::to_string),
            key_file: key.map(str::to_string),
            server_name: None,
        }
    }

    fn key_of(result: Result<TlsSettings, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn empty_section_is_valid_for_any_url() {
        assert_eq!(
            TlsConfig::default().validate(false),
            Ok(TlsSettings::default())
        );
        assert_eq!(
            TlsConfig::default().validate(true),
            Ok(TlsSettings {
                over_tls: true,
                ..TlsSettings::default()
            })
        );
    }

    #[test]
    fn certificate_and_key_come_together() {
        assert_eq!(
            key_of(tls(None, Some("/c"), None).validate(true)),
            "delivery.tls.key_file"
        );
        assert_eq!(
            key_of(tls(None, None, Some("/k")).validate(true)),
            "delivery.tls.cert_file"
        );
        let settings = tls(Some("/ca"), Some("/c"), Some("/k"))
            .validate(true)
            .unwrap();
        assert_eq!(settings.files().len(), 3);
        assert_eq!(settings.files()[2].0, "delivery.tls.key_file");
    }

    #[test]
    fn refused_for_plain_http_and_blank_paths() {
        assert_eq!(
            key_of(tls(Some("/ca"), None, None).validate(false)),
            "delivery.tls"
        );
        assert_eq!(
            key_of(tls(Some(" "), None, None).validate(true)),
            "delivery.tls.ca_file"
        );
    }

    #[test]
    fn server_name_must_be_a_name() {
        let mut config = TlsConfig {
            server_name: Some("webhook.internal".into()),
            ..TlsConfig::default()
        };
        assert!(config.validate(true).unwrap().server_name.is_some());
        config.server_name = Some("not a name!".into());
        assert_eq!(key_of(config.validate(true)), "delivery.tls.server_name");
    }
}
