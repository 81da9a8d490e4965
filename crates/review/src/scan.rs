//! Reading an overlayfs upper directory as a list of changes to its lower one.
//!
//! The overlay is mounted with `userxattr` (unprivileged, in the sandbox's
//! user namespace), which rules out `redirect_dir` and `metacopy`, so the
//! upper directory holds only three things (Documentation/filesystems/
//! overlayfs.rst):
//! - whole files, symlinks and directories, new or copied up;
//! - whiteouts, character devices 0:0, for deleted paths;
//! - directories with `user.overlay.opaque = "y"`, which hide everything of
//!   the lower directory of the same name (a directory deleted and made anew).
//!
//! A copied-up file may be unchanged (opened for writing, touched): it is a
//! change only when its content, kind or permission bits differ.

use crate::manifest::Kind;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One change of one path, relative to the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A path that did not exist.
    Added {
        /// Relative path.
        path: PathBuf,
        /// What it is now.
        kind: Kind,
        /// Permission bits now.
        mode: u32,
    },
    /// Same kind, different content and/or permission bits.
    Modified {
        /// Relative path.
        path: PathBuf,
        /// Its kind.
        kind: Kind,
        /// Permission bits before.
        old_mode: u32,
        /// Permission bits now.
        new_mode: u32,
        /// Whether the content (or link target) differs.
        content: bool,
    },
    /// A path that no longer exists.
    Deleted {
        /// Relative path.
        path: PathBuf,
        /// What it was.
        kind: Kind,
    },
}

impl Change {
    /// The path the change is about.
    pub fn path(&self) -> &Path {
        match self {
            Change::Added { path, .. } | Change::Modified { path, .. } | Change::Deleted { path, .. } => path,
        }
    }
}

/// Why a scan failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ScanError {
    /// The path being read.
    pub path: PathBuf,
    /// The error.
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> ScanError + '_ {
    move |source| ScanError { path: path.to_path_buf(), source }
}

/// The changes the overlay `upper` makes to `lower`, sorted by path; a
/// directory's deletion is listed after the deletions below it, its addition
/// before the additions below it.
pub fn scan(lower: &Path, upper: &Path) -> Result<Vec<Change>, ScanError> {
    let mut out = Vec::new();
    walk(lower, upper, Path::new(""), false, &mut out)?;
    out.sort_by_key(order);
    Ok(out)
}

/// Sort key: by path; at the same path a deletion before an addition (a
/// replaced kind); deletions of directories after their contents.
fn order(c: &Change) -> (PathBuf, u8) {
    match c {
        Change::Deleted { path, kind: Kind::Dir } => (path.join("\u{10FFFF}"), 0),
        Change::Deleted { path, .. } => (path.clone(), 0),
        Change::Added { path, .. } | Change::Modified { path, .. } => (path.clone(), 1),
    }
}

/// Walk one upper directory. `hidden`: the lower directory at `rel` is not
/// visible (an opaque or newly created directory), so its entries count as absent.
fn walk(lower: &Path, upper: &Path, rel: &Path, hidden: bool, out: &mut Vec<Change>) -> Result<(), ScanError> {
    let udir = upper.join(rel);
    let mut names: Vec<_> = fs::read_dir(&udir).map_err(at(&udir))?.collect::<Result<_, _>>().map_err(at(&udir))?;
    names.sort_by_key(|e| e.file_name());
    for entry in &names {
        let rel = rel.join(entry.file_name());
        let upath = upper.join(&rel);
        let lpath = lower.join(&rel);
        let umeta = fs::symlink_metadata(&upath).map_err(at(&upath))?;
        let lmeta = if hidden { None } else { lower_meta(&lpath)? };
        if is_whiteout(&umeta) {
            if let Some(l) = lmeta {
                deleted(lower, &rel, &l, out)?;
            }
            continue;
        }
        let ukind = Kind::of(&umeta);
        match lmeta {
            None => {
                out.push(Change::Added { path: rel.clone(), kind: ukind, mode: umeta.mode() & 0o7777 });
                if ukind == Kind::Dir {
                    walk(lower, upper, &rel, true, out)?;
                }
            }
            Some(l) if Kind::of(&l) != ukind => {
                deleted(lower, &rel, &l, out)?;
                out.push(Change::Added { path: rel.clone(), kind: ukind, mode: umeta.mode() & 0o7777 });
                if ukind == Kind::Dir {
                    walk(lower, upper, &rel, true, out)?;
                }
            }
            Some(l) => {
                let (old_mode, new_mode) = (l.mode() & 0o7777, umeta.mode() & 0o7777);
                let content = match ukind {
                    Kind::Dir => false,
                    Kind::Symlink => {
                        fs::read_link(&lpath).map_err(at(&lpath))? != fs::read_link(&upath).map_err(at(&upath))?
                    }
                    _ => !same_content(&lpath, &upath, l.size(), umeta.size())?,
                };
                if content || old_mode != new_mode {
                    out.push(Change::Modified { path: rel.clone(), kind: ukind, old_mode, new_mode, content });
                }
                if ukind == Kind::Dir {
                    let opaque = is_opaque(&upath).map_err(at(&upath))?;
                    if opaque {
                        // Everything of the lower directory that the upper does not have again is gone.
                        for le in fs::read_dir(&lpath).map_err(at(&lpath))? {
                            let le = le.map_err(at(&lpath))?;
                            if fs::symlink_metadata(upath.join(le.file_name())).is_err() {
                                let lm = le.metadata().map_err(at(&lpath))?;
                                deleted(lower, &rel.join(le.file_name()), &lm, out)?;
                            }
                        }
                    }
                    walk(lower, upper, &rel, opaque, out)?;
                }
            }
        }
    }
    Ok(())
}

fn lower_meta(path: &Path) -> Result<Option<fs::Metadata>, ScanError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(at(path)(e)),
    }
}

/// `rel` (as `meta` in the lower layer) is deleted, with everything below it.
fn deleted(lower: &Path, rel: &Path, meta: &fs::Metadata, out: &mut Vec<Change>) -> Result<(), ScanError> {
    let kind = Kind::of(meta);
    if kind == Kind::Dir {
        let dir = lower.join(rel);
        for e in fs::read_dir(&dir).map_err(at(&dir))? {
            let e = e.map_err(at(&dir))?;
            let m = e.metadata().map_err(at(&dir))?;
            deleted(lower, &rel.join(e.file_name()), &m, out)?;
        }
    }
    out.push(Change::Deleted { path: rel.to_path_buf(), kind });
    Ok(())
}

/// A whiteout: a character device with device number 0:0.
fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the upper directory carries `user.overlay.opaque = "y"`.
fn is_opaque(dir: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut value = [0u8; 8];
    // SAFETY: `path` and the attribute name are NUL-terminated and live across
    // the call; `value` is a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(path.as_ptr(), c"user.overlay.opaque".as_ptr(), value.as_mut_ptr().cast(), value.len())
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(value.get(..n as usize) == Some(b"y"))
}

/// Byte-for-byte comparison (sizes first).
fn same_content(a: &Path, b: &Path, a_size: u64, b_size: u64) -> Result<bool, ScanError> {
    if a_size != b_size {
        return Ok(false);
    }
    let mut fa = fs::File::open(a).map_err(at(a))?;
    let mut fb = fs::File::open(b).map_err(at(b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(at(a))?;
        let m = read_full(&mut fb, &mut bb).map_err(at(b))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
