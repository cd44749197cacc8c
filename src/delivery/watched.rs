//! Files re-read when they change on disk (TLS certificates and keys, token files): a cheap
//! fingerprint (modification time and length of each file, symlinks followed, so Kubernetes'
//! atomic `..data` swap counts as a change) checked at most once per interval, from the
//! request path. No watcher task to own, and nothing happens while no request is sent.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How often the files are looked at, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One file's identity at a point in time; `None` while it cannot be read.
type Fingerprint = Option<(SystemTime, u64)>;

/// A set of files and the fingerprints they had when last loaded.
#[derive(Debug)]
pub struct WatchedFiles {
    paths: Vec<PathBuf>,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    checked: Instant,
    /// The fingerprints of the content in use.
    loaded: Vec<Fingerprint>,
    /// The fingerprints of the last failed reload, so it is reported once, not every check.
    failed: Option<Vec<Fingerprint>>,
}

/// What [`WatchedFiles::poll`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Not due, or nothing changed (or the change already failed to load).
    None,
    /// The files changed since they were loaded: reload, then call `loaded` or `failed`.
    Changed(Token),
}

/// Proof of a change, handed back to [`WatchedFiles::loaded`] or [`WatchedFiles::failed`].
#[derive(Debug, PartialEq, Eq)]
pub struct Token(Vec<Fingerprint>);

impl WatchedFiles {
    /// Watches `paths`, whose current content is taken as loaded.
    pub fn new(paths: Vec<PathBuf>, interval: Duration) -> Self {
        let loaded = fingerprints(&paths);
        Self {
            paths,
            interval,
            state: Mutex::new(State {
                checked: Instant::now(),
                loaded,
                failed: None,
            }),
        }
    }

    /// Looks at the files if the interval passed since the last look. One caller at a time:
    /// a concurrent caller sees `Change::None` and keeps using what is loaded.
    pub fn poll(&self) -> Change {
        let Ok(mut state) = self.state.try_lock() else {
            return Change::None;
        };
        if state.checked.elapsed() < self.interval {
            return Change::None;
        }
        state.checked = Instant::now();
        let now = fingerprints(&self.paths);
        if now == state.loaded || state.failed.as_ref() == Some(&now) {
            return Change::None;
        }
        Change::Changed(Token(now))
    }

    /// The changed files were loaded and are in use.
    pub fn loaded(&self, token: Token) {
        if let Ok(mut state) = self.state.lock() {
            state.loaded = token.0;
            state.failed = None;
        }
    }

    /// The changed files could not be loaded (e.g. a rotation half done); the old content stays
    /// in use, and these files are not tried again until they change once more.
    pub fn failed(&self, token: Token) {
        if let Ok(mut state) = self.state.lock() {
            state.failed = Some(token.0);
        }
    }
}

fn fingerprints(paths: &[PathBuf]) -> Vec<Fingerprint> {
    paths
        .iter()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kws-watched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn reports_a_change_once_and_a_failed_one_until_it_changes_again() {
        let path = temp_file("a", "one");
        let watched = WatchedFiles::new(vec![path.clone()], Duration::ZERO);
        assert_eq!(watched.poll(), Change::None);

        std::fs::write(&path, "two, longer").unwrap();
        let Change::Changed(token) = watched.poll() else {
            panic!("change not seen")
        };
        watched.failed(token);
        assert_eq!(
            watched.poll(),
            Change::None,
            "a failed change is not retried"
        );

        std::fs::write(&path, "three, longer still").unwrap();
        let Change::Changed(token) = watched.poll() else {
            panic!("second change not seen")
        };
        watched.loaded(token);
        assert_eq!(watched.poll(), Change::None);

        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(watched.poll(), Change::Changed(_)),
            "removal is a change"
        );
    }

    #[test]
    fn looks_at_most_once_per_interval() {
        let path = temp_file("b", "one");
        let watched = WatchedFiles::new(vec![path.clone()], Duration::from_secs(3600));
        std::fs::write(&path, "changed content").unwrap();
        assert_eq!(watched.poll(), Change::None);
    }
}
