//! TLS: the per-installation CA that signs leaf certificates for the hosts
//! whose HTTPS the proxy terminates (secret-bound hosts only), the bundle
//! the sandbox trusts, and the verifier for upstream servers.

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why TLS material could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// A CA file holds no certificate.
    #[error("{0}: no PEM certificate in it")]
    Empty(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

const CA_NAME: &str = "clawcage egress CA";

/// The per-installation CA (`$STATE/ca/ca.pem`, `ca.key` mode 0600).
pub struct Ca {
    key: KeyPair,
    issuer: rcgen::Certificate,
    pem: String,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.distinguished_name.push(DnType::OrganizationName, "clawcage");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

/// The crypto provider every config here uses (ring; no process default needed).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Ca {
    /// Load the CA from `dir` (`ca.pem`, `ca.key`), creating both on first use.
    pub fn load_or_create(dir: &Path) -> Result<Ca, TlsError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err(dir))?;
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => KeyPair::from_pem(&text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = KeyPair::generate()?;
                let tmp = dir.join(format!(".ca.key.{}", std::process::id()));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io_err(&tmp))?;
                io::Write::write_all(&mut f, key.serialize_pem().as_bytes()).map_err(io_err(&tmp))?;
                f.sync_all().map_err(io_err(&tmp))?;
                // Two first runs at once: the first rename wins, the loser re-reads it.
                if std::fs::hard_link(&tmp, &key_path).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    return Ca::load_or_create(dir);
                }
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(&cert_path);
                key
            }
            Err(e) => return Err(io_err(&key_path)(e)),
        };
        // The issuer is re-derived from the key on every start (same name,
        // same key, same key identifier), so the stored certificate chains.
        let issuer = ca_params()?.self_signed(&key)?;
        let pem = match std::fs::read_to_string(&cert_path) {
            Ok(p) if p.contains("BEGIN CERTIFICATE") => p,
            _ => {
                let pem = issuer.pem();
                write_atomic(&cert_path, pem.as_bytes())?;
                pem
            }
        };
        Ok(Ca { key, issuer, pem, leaves: Mutex::new(HashMap::new()) })
    }

    /// The CA certificate (PEM) the sandbox trusts.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// A leaf certificate for `host` signed by this CA, with its chain and key.
    fn leaf(&self, host: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let mut p = CertificateParams::new(vec![host.to_string()])?;
        p.distinguished_name.push(DnType::CommonName, host);
        p.is_ca = IsCa::NoCa;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let leaf = p.signed_by(&key, &self.issuer, &self.key)?;
        let chain = vec![leaf.der().clone(), self.issuer.der().clone()];
        Ok((chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))))
    }

    /// A server config presenting a leaf certificate for `host`, made once
    /// per host and process.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        if let Some(c) = self.leaves.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(c);
        }
        let (chain, der) = self.leaf(host)?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, der)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        if let Ok(mut m) = self.leaves.lock() {
            m.insert(host.to_string(), cfg.clone());
        }
        Ok(cfg)
    }
}

/// Write `data` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Host CA bundles, first that exists wins (Debian, RHEL, others).
const HOST_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// Write `dir/bundle.pem`: the host's CA bundle followed by `ca`'s
/// certificate. This is the file the sandbox sees as its system bundle.
pub fn write_bundle(ca: &Ca, dir: &Path) -> Result<PathBuf, TlsError> {
    let mut text = HOST_BUNDLES.iter().find_map(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# clawcage egress CA (this installation)\n");
    text.push_str(ca.cert_pem());
    let path = dir.join("bundle.pem");
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Read every PEM certificate of `path`.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice()).collect::<Result<_, _>>().map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_path_buf()));
    }
    Ok(certs)
}

/// The client config for upstream servers: the system roots plus `extra`
/// CA files (policy `[network] ca`). HTTP/1.1 only.
pub fn upstream_config(extra: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped; a missing store leaves
    // only the policy's CAs (fail closed: nothing verifies without roots).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in extra {
        for c in load_certs(path)? {
            roots.add(c)?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn the_ca_persists_and_its_leaves_chain_to_the_stored_certificate() {
        let dir = std::env::temp_dir().join(format!("clawcage-egress-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Ca::load_or_create(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Ca::load_or_create(&dir).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem(), "same CA on the second start");
        // A leaf made by the second instance verifies against the stored PEM.
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut a.cert_pem().as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
        b.server_config("api.example.test").unwrap();
        let leaf = b.leaf("api.example.test").unwrap().0.remove(0);
        let name = rustls::pki_types::ServerName::try_from("api.example.test").unwrap();
        verifier.verify_server_cert(&leaf, &[], &name, &[], rustls::pki_types::UnixTime::now()).unwrap();
        let other = rustls::pki_types::ServerName::try_from("evil.test").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], rustls::pki_types::UnixTime::now()).is_err());
        let bundle = std::fs::read_to_string(write_bundle(&a, &dir).unwrap()).unwrap();
        assert!(bundle.ends_with(a.cert_pem()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
