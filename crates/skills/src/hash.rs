//! The content hash of a skill directory: SHA-256 over a canonical walk.
//!
//! Entries are visited in byte order of their relative paths (`/`-separated).
//! Each contributes, with NUL separators (a name cannot hold NUL):
//! - a directory: `D`, its path;
//! - a file: `F`, its path, its mode (`755` when any execute bit is set, else
//!   `644`: the bits that survive a copy), its length, then its bytes.
//!
//! Symbolic links, devices, sockets and FIFOs are refused, not hashed: a
//! link could point anywhere at the time of use. Names must be UTF-8. The
//! walk is bounded ([`MAX_FILES`], [`MAX_BYTES`], [`MAX_DEPTH`]).

use crate::error::SkillError;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Most entries (files and directories) in one skill.
pub const MAX_FILES: usize = 10_000;
/// Most bytes of file content in one skill.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Deepest nesting of directories.
pub const MAX_DEPTH: usize = 32;

/// One entry of a skill directory, in walk order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub rel: String,
    /// Directory (else a regular file).
    pub dir: bool,
    /// Any execute bit set (files).
    pub exec: bool,
}

/// Every entry under `root` in canonical order, checked (no links, no
/// special files, UTF-8 names, within the bounds).
pub fn walk(root: &Path) -> Result<Vec<Entry>, SkillError> {
    let meta = fs::symlink_metadata(root).map_err(SkillError::io("stat", root))?;
    if !meta.is_dir() {
        return Err(SkillError::Content { path: root.into(), reason: "a skill is a directory".into() });
    }
    let mut out = Vec::new();
    let mut bytes = 0u64;
    walk_dir(root, "", 0, &mut out, &mut bytes)?;
    out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

fn walk_dir(root: &Path, rel: &str, depth: usize, out: &mut Vec<Entry>, bytes: &mut u64) -> Result<(), SkillError> {
    let dir = root.join(rel);
    if depth > MAX_DEPTH {
        return Err(SkillError::Content { path: dir, reason: format!("nested deeper than {MAX_DEPTH} directories") });
    }
    for item in fs::read_dir(&dir).map_err(SkillError::io("read directory", &dir))? {
        let item = item.map_err(SkillError::io("read directory", &dir))?;
        let path = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| SkillError::Content { path: path.clone(), reason: "the name is not UTF-8".into() })?;
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = fs::symlink_metadata(&path).map_err(SkillError::io("stat", &path))?;
        let ft = meta.file_type();
        if out.len() >= MAX_FILES {
            return Err(SkillError::Content { path: root.into(), reason: format!("more than {MAX_FILES} entries") });
        }
        if ft.is_dir() {
            out.push(Entry { rel: child.clone(), dir: true, exec: false });
            walk_dir(root, &child, depth + 1, out, bytes)?;
        } else if ft.is_file() {
            *bytes += meta.len();
            if *bytes > MAX_BYTES {
                return Err(SkillError::Content { path: root.into(), reason: format!("more than {MAX_BYTES} bytes") });
            }
            out.push(Entry { rel: child, dir: false, exec: meta.permissions().mode() & 0o111 != 0 });
        } else {
            let kind = if ft.is_symlink() { "a symbolic link" } else { "not a regular file or directory" };
            return Err(SkillError::Content {
                path,
                reason: format!("{kind}: skills may hold only regular files and directories"),
            });
        }
    }
    Ok(())
}

/// Open a file of the walk for reading without following a link that
/// replaced it since.
pub(crate) fn open_entry(path: &Path) -> Result<fs::File, SkillError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(SkillError::io("open", path))?;
    let meta = file.metadata().map_err(SkillError::io("stat", path))?;
    if !meta.is_file() {
        return Err(SkillError::Content { path: path.into(), reason: "changed into a non-regular file".into() });
    }
    Ok(file)
}

/// The SHA-256 (hex) of the skill directory at `root`.
pub fn hash_dir(root: &Path) -> Result<String, SkillError> {
    let entries = walk(root)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for e in &entries {
        if e.dir {
            h.update(b"D\0");
            h.update(e.rel.as_bytes());
            h.update(b"\0");
            continue;
        }
        let path: PathBuf = root.join(&e.rel);
        let mut file = open_entry(&path)?;
        let mut content = Vec::new();
        loop {
            let n = file.read(&mut buf).map_err(SkillError::io("read", &path))?;
            if n == 0 {
                break;
            }
            content.extend_from_slice(&buf[..n]);
            if content.len() as u64 > MAX_BYTES {
                return Err(SkillError::Content { path, reason: format!("more than {MAX_BYTES} bytes") });
            }
        }
        let mode: &[u8] = if e.exec { b"755" } else { b"644" };
        h.update(b"F\0");
        h.update(e.rel.as_bytes());
        h.update(b"\0");
        h.update(mode);
        h.update(b"\0");
        h.update(content.len().to_string().as_bytes());
        h.update(b"\0");
        h.update(&content);
    }
    Ok(hex::encode(h.finalize()))
}
