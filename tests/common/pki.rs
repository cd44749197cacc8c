//! Certificates made in the test (rcgen): a CA, leaf certificates it issues, PEM files, and
//! an atomic Kubernetes-style swap of a directory of files (a symlink replaced by rename).
//! Standalone (no other `common` module), so `tests/config.rs` includes it by path.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority that issues leaf certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

/// A certificate and its private key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        use rustls::pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM")
    }
}

/// A self-signed server certificate (no CA of its own), as `openssl req -x509` users expect
/// to trust directly. rcgen marks it as no CA (no basicConstraints CA:TRUE), which webpki
/// requires of an end-entity certificate.
pub fn self_signed(names: &[&str]) -> Leaf {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
    Leaf {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
        der: certified.cert.der().clone(),
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Ca { params, key, pem }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate named `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// A directory whose files are replaced all at once, as a Kubernetes Secret volume does:
/// `dir/current` is a symlink to a version directory, swapped by `rename`.
pub struct SwappedDir {
    pub dir: PathBuf,
    version: usize,
}

impl SwappedDir {
    /// Creates the directory with its first version of `files` (name, content).
    pub fn new(label: &str, files: &[(&str, &str)]) -> SwappedDir {
        let dir = std::env::temp_dir().join(unique(label));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut swapped = SwappedDir { dir, version: 0 };
        swapped.swap(files);
        swapped
    }

    /// Where `name` is read from (through the symlink).
    pub fn path(&self, name: &str) -> String {
        self.dir
            .join("current")
            .join(name)
            .to_str()
            .expect("UTF-8 temp path")
            .to_string()
    }

    /// Writes a new version and points `current` at it atomically.
    pub fn swap(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = self.dir.join(format!("v{}", self.version));
        std::fs::create_dir_all(&version).expect("version dir");
        for (name, content) in files {
            std::fs::write(version.join(name), content).expect("write file");
        }
        let link = self.dir.join("current.tmp");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&version, &link).expect("symlink");
        std::fs::rename(&link, self.dir.join("current")).expect("swap symlink");
    }
}

impl Drop for SwappedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `content` to a new file under the temp dir and returns its path.
pub fn temp_file(label: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join("kws-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path: PathBuf = dir.join(unique(label));
    std::fs::write(&path, content).expect("write temp file");
    path_string(&path)
}

pub fn path_string(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// A temp-dir name unique to this process and call.
fn unique(label: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "kws-{label}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
