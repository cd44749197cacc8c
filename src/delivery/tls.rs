//! The rustls client configuration toward the endpoint, built from `delivery.tls`: trusted
//! roots (bundled Mozilla roots, the system store, `ca_file`) and the optional client
//! certificate for mTLS. Reads the files; errors name the key and never quote a file's
//! content (a private key must not end up in a log line).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::{ConfigError, TlsSettings};

/// The one crypto provider of the endpoint client (ring, as `main` installs for the process).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration (without ALPN; the connector adds it), reading every
/// configured file. Called at start-up, by `--check-config`, and again when a file changes.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, ConfigError> {
    client_config_with(settings, read)
}

/// [`client_config`] with each file's bytes given by `read(key, path)` instead of the file
/// system (the `pem` fuzz target feeds arbitrary bytes through it); the same parsing, checks
/// and errors.
pub fn client_config_with(
    settings: &TlsSettings,
    read: impl Fn(&str, &Path) -> Result<Vec<u8>, ConfigError>,
) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if settings.over_tls {
        roots.add_parsable_certificates(system_roots().iter().cloned());
    }
    if let Some(path) = &settings.ca_file {
        let key = "delivery.tls.ca_file";
        let bytes = read(key, path)?;
        for (index, certificate) in certificates(key, path, &bytes)?.into_iter().enumerate() {
            roots.add(certificate).map_err(|error| {
                invalid(
                    key,
                    format!(
                        "certificate {} in {} is not a usable CA certificate ({error}); give the PEM CA bundle",
                        index + 1,
                        path.display()
                    ),
                )
            })?;
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid("delivery.tls", format!("TLS setup failed: {error}")))?
        .with_root_certificates(roots);
    match &settings.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_file, key_file)) => {
            let chain_key = "delivery.tls.cert_file";
            let chain = certificates(chain_key, cert_file, &read(chain_key, cert_file)?)?;
            let key = private_key(key_file, &read("delivery.tls.key_file", key_file)?)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| match error {
                    rustls::Error::InconsistentKeys(_) => invalid(
                        "delivery.tls.key_file",
                        format!(
                            "{} does not match the certificate in delivery.tls.cert_file ({}); give the key the certificate was issued for",
                            key_file.display(),
                            cert_file.display()
                        ),
                    ),
                    // Checking the key against the certificate parses the certificate: an
                    // X.509 v1 certificate (`openssl x509 -req` without extensions) fails here.
                    rustls::Error::InvalidCertificate(error) => invalid(
                        "delivery.tls.cert_file",
                        format!(
                            "the first certificate in {} cannot be used ({error:?}); give an X.509 v3 client certificate in PEM, leaf first",
                            cert_file.display()
                        ),
                    ),
                    // rustls describes the key's type or encoding, never its bytes.
                    other => invalid(
                        "delivery.tls.key_file",
                        format!(
                            "{} is not a usable private key ({other}); use an RSA, ECDSA or Ed25519 key in PEM",
                            key_file.display()
                        ),
                    ),
                })
        }
    }
}

/// The system trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` or the OS default), read once: a
/// distroless image has none, which is fine (the bundled roots and `ca_file` remain).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::debug!(
                errors = found.errors.len(),
                loaded = found.certs.len(),
                "Some system trust store certificates could not be read"
            );
        }
        found.certs
    })
}

/// Every PEM certificate in `bytes` (the file at `path`); an error unless there is at least
/// one.
fn certificates(
    key: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            invalid(
                key,
                format!(
                    "{} is not valid PEM; give PEM certificates (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ),
            )
        })?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certificates)
}

/// The first PEM private key in `bytes` (the file at `path`). The PEM parser's error can
/// quote a line of the file, so it is not passed on.
fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|_| {
        invalid(
            "delivery.tls.key_file",
            format!(
                "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)",
                path.display()
            ),
        )
    })
}

pub(crate) fn read(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| {
        invalid(
            key,
            format!(
                "cannot read {}: {error}; mount the file there or fix the path",
                path.display()
            ),
        )
    })
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}
