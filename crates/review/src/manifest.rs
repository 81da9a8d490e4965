//! The baseline: what the real workspace looked like when the task started.
//!
//! `apply` compares every path it is about to change with its baseline stamp;
//! a path whose stamp moved since (edited, replaced, created or deleted under
//! the task) is a conflict, and nothing is applied.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most entries a baseline walks before refusing (a review of more is not a review).
pub const MAX_ENTRIES: usize = 1_000_000;

/// What kind of file a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, fifo, socket): never applied.
    Other,
}

impl Kind {
    /// The kind of `meta` (from `symlink_metadata`).
    pub fn of(meta: &fs::Metadata) -> Kind {
        let t = meta.file_type();
        if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

/// Enough of a file's metadata to tell that it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// File kind.
    pub kind: Kind,
    /// Inode number (a replaced file has another).
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits and file type (`st_mode`).
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, nanoseconds since the epoch (moves on chmod and on
    /// writes even when the mtime is set back).
    pub ctime_ns: i128,
}

impl Stamp {
    /// The stamp of `meta`.
    pub fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            kind: Kind::of(meta),
            ino: meta.ino(),
            size: meta.size(),
            mode: meta.mode(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }

    /// The stamp of `path` now, `None` when it does not exist.
    pub fn now(path: &Path) -> io::Result<Option<Stamp>> {
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(Stamp::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Stamps of every path under the workspace, relative to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Relative path → stamp. The workspace root itself is not listed.
    pub entries: BTreeMap<PathBuf, Stamp>,
}

impl Manifest {
    /// Walk `root` without following symlinks.
    pub fn take(root: &Path) -> io::Result<Manifest> {
        let mut entries = BTreeMap::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            for entry in fs::read_dir(&dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))? {
                let entry = entry?;
                let meta = entry.metadata()?; // DirEntry::metadata does not follow symlinks
                let path = rel.join(entry.file_name());
                let stamp = Stamp::of(&meta);
                if stamp.kind == Kind::Dir {
                    stack.push(path.clone());
                }
                entries.insert(path, stamp);
                if entries.len() > MAX_ENTRIES {
                    return Err(io::Error::other(format!(
                        "{} has more than {MAX_ENTRIES} entries: too large to review",
                        root.display()
                    )));
                }
            }
        }
        Ok(Manifest { entries })
    }

    /// The baseline stamp of `rel`, `None` when it did not exist.
    pub fn get(&self, rel: &Path) -> Option<&Stamp> {
        self.entries.get(rel)
    }

    /// Every baseline path strictly below `rel`.
    pub fn below<'a>(&'a self, rel: &'a Path) -> impl Iterator<Item = (&'a PathBuf, &'a Stamp)> + 'a {
        self.entries
            .range(rel.to_path_buf()..)
            .skip_while(move |(p, _)| *p == rel)
            .take_while(move |(p, _)| p.starts_with(rel))
    }
}
