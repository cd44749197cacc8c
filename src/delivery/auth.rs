//! Credentials added to every request by the HTTP client (`delivery.auth`): a bearer token
//! read from a file and re-read when the file changes, or OAuth2 client credentials
//! ([`super::oauth2`]). Tokens are held as sensitive header values (Debug prints `Sensitive`,
//! HPACK never indexes them) and never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use http::header::{HeaderValue, AUTHORIZATION};
use http::HeaderMap;

use super::oauth2::OAuth2;
use super::tls::{invalid, read};
use super::watched::{Change, WatchedFiles, CHECK_INTERVAL};
use crate::config::{AuthSettings, ConfigError};
use crate::ops::events::{self, CredentialSource};
use crate::ops::Metrics;

const KEY: &str = "delivery.auth.bearer_token_file";

/// Sets the `Authorization` header of each request from the configured source.
#[derive(Clone)]
pub enum Auth {
    None,
    BearerFile(Arc<BearerFile>),
    /// Applied by the HTTP client itself: fetching a token is a request of its own.
    OAuth2(Arc<OAuth2>),
}

impl Auth {
    /// Reads the credentials once (so a missing file stops the start, exit 64).
    pub fn new(settings: &AuthSettings, metrics: &Metrics) -> Result<Self, ConfigError> {
        match settings {
            AuthSettings::None => Ok(Self::None),
            AuthSettings::BearerTokenFile(path) => Ok(Self::BearerFile(Arc::new(BearerFile::new(
                path.clone(),
                metrics.clone(),
            )?))),
            AuthSettings::OAuth2(settings) => Ok(Self::OAuth2(Arc::new(OAuth2::new(
                settings,
                metrics.clone(),
            )))),
        }
    }

    /// Adds the current credentials to `headers` (OAuth2: see [`OAuth2::token`]).
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self {
            Self::None | Self::OAuth2(_) => {}
            Self::BearerFile(file) => {
                headers.insert(AUTHORIZATION, file.current());
            }
        }
    }
}

/// A bearer token file and the header value made of its current content.
pub struct BearerFile {
    path: PathBuf,
    watched: WatchedFiles,
    value: RwLock<HeaderValue>,
    metrics: Metrics,
}

impl BearerFile {
    fn new(path: PathBuf, metrics: Metrics) -> Result<Self, ConfigError> {
        let watched = WatchedFiles::new(vec![path.clone()], CHECK_INTERVAL);
        let value = header_value(&path)?;
        Ok(Self {
            path,
            watched,
            value: RwLock::new(value),
            metrics,
        })
    }

    /// The header value, re-read first if the file changed. While a changed file cannot be
    /// used (removed, empty mid-rotation), the last good token stays in use.
    fn current(&self) -> HeaderValue {
        if let Change::Changed(token) = self.watched.poll() {
            match header_value(&self.path) {
                Ok(value) => {
                    if let Ok(mut current) = self.value.write() {
                        *current = value;
                    }
                    self.watched.loaded(token);
                    events::credentials_reloaded(
                        &self.metrics,
                        CredentialSource::BearerTokenFile,
                        Ok(()),
                    );
                }
                Err(error) => {
                    self.watched.failed(token);
                    events::credentials_reloaded(
                        &self.metrics,
                        CredentialSource::BearerTokenFile,
                        Err(&error.to_string()),
                    );
                }
            }
        }
        match self.value.read() {
            Ok(value) => value.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// `Bearer <trimmed file content>`, marked sensitive. Errors never include the content.
pub fn header_value(path: &Path) -> Result<HeaderValue, ConfigError> {
    let bytes = read(KEY, path)?;
    let token = String::from_utf8(bytes).map_err(|_| {
        invalid(
            KEY,
            format!(
                "{} is not UTF-8 text; it must hold the token only",
                path.display()
            ),
        )
    })?;
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid(
            KEY,
            format!("{} is empty; it must hold the token", path.display()),
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        invalid(
            KEY,
            format!(
                "{} holds characters not allowed in an HTTP header (a token is one line of printable text)",
                path.display()
            ),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kws-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn token_is_trimmed_and_sensitive() {
        let path = temp_file("token", "  abc.def.ghi\n");
        let value = header_value(&path).unwrap();
        assert_eq!(value, "Bearer abc.def.ghi");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("abc"));
    }

    #[test]
    fn errors_name_the_key_and_never_the_content() {
        let missing = std::env::temp_dir().join("kws-auth-does-not-exist");
        let Err(ConfigError::Invalid { key, message }) = header_value(&missing) else {
            panic!("a missing file is an error")
        };
        assert_eq!(key, KEY);
        assert!(message.contains("cannot read"));

        let path = temp_file("multiline", "secret-line-one\nsecret-line-two\n");
        let Err(error) = header_value(&path) else {
            panic!("two lines are not a token")
        };
        assert!(!error.to_string().contains("secret-line"), "{error}");
        let path = temp_file("blank", " \n");
        assert!(header_value(&path)
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
