//! The optional signing key for the audit head: HMAC-SHA256 over the head
//! (log name, seq, hash), kept beside the head in the store and checked by
//! `verify`.
//!
//! Why HMAC: whoever can write the state directory can rewrite the whole
//! chain and the head in the store; only a secret they lack stops that. The
//! operator who holds the key is also who verifies, so a symmetric key is
//! enough and adds no asymmetric crypto to the audited code. The key file
//! (32 bytes or more, e.g. `head -c 32 /dev/urandom`) must not be readable
//! by group or others, and belongs outside the state directory.

use super::AuditError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Environment variable naming the key file.
pub const KEY_FILE_ENV: &str = "CLAWCAGE_AUDIT_KEY_FILE";

/// Shortest key accepted, in bytes.
const MIN_KEY_LEN: usize = 32;

/// A key for signing the audit head. Its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct SigningKey {
    key: Vec<u8>,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).field("path", &self.path).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Load the key in `path` (its whole contents are the key).
    pub fn load(path: &Path) -> Result<SigningKey, AuditError> {
        use std::os::unix::fs::MetadataExt;
        let bad = |detail: String| AuditError::Key { path: path.to_path_buf(), detail };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if meta.mode() & 0o077 != 0 {
            return Err(bad(format!("mode {:o} lets group or others read it; chmod 600", meta.mode() & 0o777)));
        }
        let key = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if key.len() < MIN_KEY_LEN {
            return Err(bad(format!("{} bytes; at least {MIN_KEY_LEN} needed", key.len())));
        }
        Ok(SigningKey::from_bytes(key, path))
    }

    /// The key named by `$CLAWCAGE_AUDIT_KEY_FILE`, if that is set (and not empty).
    pub fn from_env() -> Result<Option<SigningKey>, AuditError> {
        match std::env::var_os(KEY_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(p) => SigningKey::load(Path::new(&p)).map(Some),
            None => Ok(None),
        }
    }

    fn from_bytes(key: Vec<u8>, path: &Path) -> SigningKey {
        let mut h = Sha256::new();
        h.update(b"clawcage-audit-key-id\0");
        h.update(&key);
        let id = hex::encode(&h.finalize()[..8]);
        SigningKey { key, id, path: path.to_path_buf() }
    }

    /// A short public name of the key (16 hex digits of a hash of it), stored
    /// with the head so `verify` can tell "another key" from "forged".
    pub fn id(&self) -> &str {
        &self.id
    }

    fn hmac(&self, log: &str, seq: u64, hash: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts every key length"),
        };
        m.update(b"clawcage-audit-head-v1\0");
        m.update(log.as_bytes());
        m.update(b"\0");
        m.update(seq.to_string().as_bytes());
        m.update(b"\0");
        m.update(hash.as_bytes());
        m
    }

    /// The MAC (hex) of the head (`log`, `seq`, `hash`).
    pub fn sign(&self, log: &str, seq: u64, hash: &str) -> String {
        hex::encode(self.hmac(log, seq, hash).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is this key's MAC of the head (constant-time compare).
    pub fn check(&self, log: &str, seq: u64, hash: &str, mac: &str) -> bool {
        match hex::decode(mac) {
            Ok(bytes) => self.hmac(log, seq, hash).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_test(byte: u8) -> SigningKey {
        SigningKey::from_bytes(vec![byte; 32], Path::new("test-key"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // Check the primitive itself: key "Jefe", data "what do ya want for nothing?".
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sign_and_check_bind_every_field() {
        let k = SigningKey::for_test(7);
        let mac = k.sign("audit.jsonl", 5, &"a".repeat(64));
        assert!(k.check("audit.jsonl", 5, &"a".repeat(64), &mac));
        assert!(!k.check("audit.jsonl", 6, &"a".repeat(64), &mac));
        assert!(!k.check("audit.jsonl", 5, &"b".repeat(64), &mac));
        assert!(!k.check("other.jsonl", 5, &"a".repeat(64), &mac));
        assert!(!SigningKey::for_test(8).check("audit.jsonl", 5, &"a".repeat(64), &mac));
        assert!(!k.check("audit.jsonl", 5, &"a".repeat(64), "zz"));
        assert_ne!(k.id(), SigningKey::for_test(8).id());
    }

    #[test]
    fn key_files_must_be_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::tests::Tmp::new("key");
        let p = dir.0.join("key");
        std::fs::write(&p, [1u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load(&p).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SigningKey::load(&p).is_ok());
        std::fs::write(&p, [1u8; 31]).unwrap();
        let err = SigningKey::load(&p).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(format!("{:?}", SigningKey::load(&dir.0.join("missing")).unwrap_err()).contains("missing"));
    }
}
