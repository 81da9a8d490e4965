//! Writing reviewed changes into the real workspace.
//!
//! All or nothing at the decision: every path to change is first compared
//! with the baseline taken when the task started, and one conflict refuses
//! the whole apply with the list of conflicting paths. Protected paths are
//! never written. No symlink in the real workspace is followed, set-user-ID,
//! set-group-ID and sticky bits never reach it, and each file lands by a
//! rename of a complete temporary copy.

use crate::manifest::{Kind, Manifest, Stamp};
use crate::scan::Change;
use clawcage_policy::glob_match;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Paths the task may not change, whatever it wrote in its overlay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Protect {
    /// Workspace-relative globs; a glob also covers everything below a match.
    pub globs: Vec<String>,
    /// Entries directly in the workspace root whose names start with `.`
    /// (except `.git`, whose `hooks` and `config` the globs cover).
    pub root_dotfiles: bool,
}

impl Protect {
    /// The defaults of reviewed changes: `.git/hooks`, `.git/config`,
    /// `.env*` anywhere, and dotfiles at the workspace root.
    pub fn review_defaults() -> Protect {
        Protect { globs: vec![".git/hooks".into(), ".git/config".into(), "**/.env*".into()], root_dotfiles: true }
    }

    /// The rule that protects `rel`, if any.
    pub fn rule_for(&self, rel: &Path) -> Option<String> {
        let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if self.root_dotfiles {
            if let Some(first) = parts.first() {
                if first.starts_with('.') && first != ".git" {
                    return Some("dotfiles at the workspace root".into());
                }
            }
        }
        for n in 1..=parts.len() {
            let prefix = parts[..n].join("/");
            if let Some(g) = self.globs.iter().find(|g| glob_match(g, &prefix)) {
                return Some(g.clone());
            }
        }
        None
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Changes written to the workspace.
    pub applied: Vec<Change>,
    /// Changes not written, with the reason (protected paths, special files).
    pub refused: Vec<(PathBuf, String)>,
}

/// Why an apply did not happen, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The real workspace changed under these paths since the task started; nothing was applied.
    #[error("the workspace changed since the task started; nothing applied. Conflicting paths: {}", list(.0))]
    Conflicts(Vec<PathBuf>),
    /// A path of the workspace is not what it must be (a symlink where a directory was expected).
    #[error("{}: {why}; stopped", path.display())]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed; changes before this one were applied.
    #[error("{}: {source} (changes before this path were applied)", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ApplyError + '_ {
    move |source| ApplyError::Io { path: path.to_path_buf(), source }
}

/// Apply `changes` (a scan of `upper` against `workspace`) to `workspace`.
/// `owner`: uid/gid for new files (host root applying on a user's workspace).
pub fn apply(
    workspace: &Path,
    upper: &Path,
    baseline: &Manifest,
    changes: &[Change],
    protect: &Protect,
    owner: Option<(u32, u32)>,
) -> Result<Report, ApplyError> {
    let mut report = Report::default();
    let mut todo: Vec<&Change> = Vec::new();
    for c in changes {
        let rel = c.path();
        if let Some(rule) = protect.rule_for(rel) {
            report.refused.push((rel.to_path_buf(), format!("protected ({rule})")));
        } else if matches!(c, Change::Added { kind: Kind::Other, .. } | Change::Modified { kind: Kind::Other, .. }) {
            report.refused.push((rel.to_path_buf(), "not a file, directory or symlink".into()));
        } else {
            todo.push(c);
        }
    }
    // A directory cannot be deleted while something refused stays in it.
    let refused: Vec<PathBuf> = report.refused.iter().map(|(p, _)| p.clone()).collect();
    todo.retain(|c| match c {
        Change::Deleted { path, kind: Kind::Dir } if refused.iter().any(|r| r.starts_with(path)) => {
            report.refused.push((path.clone(), "holds protected paths".into()));
            false
        }
        _ => true,
    });

    let conflicts = conflicts(workspace, baseline, &todo).map_err(io_at(workspace))?;
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }

    // Deletions, deepest first; then additions and modifications, parents first.
    let mut deletions: Vec<&Change> = todo.iter().copied().filter(|c| matches!(c, Change::Deleted { .. })).collect();
    deletions.sort_by_key(|c| std::cmp::Reverse(c.path().components().count()));
    let mut writes: Vec<&Change> = todo.iter().copied().filter(|c| !matches!(c, Change::Deleted { .. })).collect();
    writes.sort_by_key(|c| (c.path().components().count(), c.path().to_path_buf()));
    for c in deletions.into_iter().chain(writes) {
        write_one(workspace, upper, c, owner)?;
        report.applied.push(c.clone());
    }
    Ok(report)
}

/// Paths whose real state moved away from the baseline.
fn conflicts(workspace: &Path, baseline: &Manifest, todo: &[&Change]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for c in todo {
        let rel = c.path();
        let now = Stamp::now(&workspace.join(rel))?;
        let then = baseline.get(rel);
        let moved = match (then, now) {
            (None, None) => false,
            (Some(a), Some(b)) if a.kind == Kind::Dir && b.kind == Kind::Dir => {
                // A directory's times move whenever an entry is added; its identity and mode matter.
                a.ino != b.ino || a.mode != b.mode || dir_gained_entries(workspace, rel, baseline)?
            }
            (Some(a), Some(b)) => a != &b,
            _ => true,
        };
        if moved {
            out.push(rel.to_path_buf());
        }
    }
    Ok(out)
}

/// Whether the real directory `rel` holds an entry the baseline did not know
/// (only deletions of a directory care: it must end up empty).
fn dir_gained_entries(workspace: &Path, rel: &Path, baseline: &Manifest) -> io::Result<bool> {
    for e in fs::read_dir(workspace.join(rel))? {
        if baseline.get(&rel.join(e?.file_name())).is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Check that every existing ancestor of `rel` under `workspace` is a real
/// directory (not a symlink), so that no write escapes the workspace.
fn check_parents(workspace: &Path, rel: &Path) -> Result<(), ApplyError> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(ApplyError::Unsafe { path: rel.to_path_buf(), why: "not a plain relative path".into() });
    }
    let mut p = workspace.to_path_buf();
    let parents: Vec<_> = rel.parent().map(|x| x.components().collect()).unwrap_or_default();
    for comp in parents {
        p.push(comp);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(ApplyError::Unsafe { path: p, why: "is not a directory (a symlink?)".into() }),
            Err(e) => return Err(io_at(&p)(e)),
        }
    }
    Ok(())
}

fn write_one(workspace: &Path, upper: &Path, c: &Change, owner: Option<(u32, u32)>) -> Result<(), ApplyError> {
    let rel = c.path();
    check_parents(workspace, rel)?;
    let dst = workspace.join(rel);
    let src = upper.join(rel);
    match c {
        Change::Deleted { kind: Kind::Dir, .. } => fs::remove_dir(&dst).map_err(io_at(&dst)),
        Change::Deleted { .. } => fs::remove_file(&dst).map_err(io_at(&dst)),
        Change::Added { kind: Kind::Dir, mode, .. } => {
            fs::create_dir(&dst).map_err(io_at(&dst))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode & 0o777)).map_err(io_at(&dst))?;
            chown(&dst, owner)
        }
        Change::Modified { kind: Kind::Dir, new_mode, .. } => {
            fs::set_permissions(&dst, fs::Permissions::from_mode(new_mode & 0o777)).map_err(io_at(&dst))
        }
        Change::Modified { kind: Kind::File, new_mode, content: false, .. } => {
            fs::set_permissions(&dst, fs::Permissions::from_mode(new_mode & 0o777)).map_err(io_at(&dst))
        }
        Change::Added { kind, .. } | Change::Modified { kind, .. } => {
            // Keep the owner of a file that is replaced; new files get `owner`.
            let keep = fs::symlink_metadata(&dst).ok().map(|m| (m.uid(), m.gid()));
            let tmp = temp_name(&dst);
            match kind {
                Kind::Symlink => {
                    let target = fs::read_link(&src).map_err(io_at(&src))?;
                    std::os::unix::fs::symlink(&target, &tmp).map_err(io_at(&tmp))?;
                }
                _ => copy_file(&src, &tmp)?,
            }
            let who = keep.or(owner);
            if let Err(e) = chown(&tmp, who) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            fs::rename(&tmp, &dst).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_at(&dst)(e)
            })
        }
    }
}

/// A temporary name beside `dst` (same directory, so the rename is atomic).
fn temp_name(dst: &Path) -> PathBuf {
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dst.with_file_name(format!(".{name}.clawcage-apply-{}", std::process::id()))
}

/// Copy content and permission bits (without set-id and sticky bits) into a new file.
fn copy_file(src: &Path, tmp: &Path) -> Result<(), ApplyError> {
    let mode = fs::symlink_metadata(src).map_err(io_at(src))?.mode() & 0o777;
    let mut from = fs::File::open(src).map_err(io_at(src))?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(io_at(tmp))?;
    let done = io::copy(&mut from, &mut to)
        .and_then(|_| to.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|()| to.sync_all());
    if let Err(e) = done {
        let _ = fs::remove_file(tmp);
        return Err(io_at(tmp)(e));
    }
    Ok(())
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), ApplyError> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_at(path)),
        None => Ok(()),
    }
}
