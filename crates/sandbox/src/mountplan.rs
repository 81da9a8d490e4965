//! Host-side resolution of a [`Plan`] into concrete mount operations.
//!
//! Runs in the supervisor before the sandbox exists, with the host's view of
//! the filesystem: symlinks are resolved here (a bind always lands on the
//! canonical path), deny and protect globs are expanded, and the order is
//! fixed so that parents are mounted before their children.

use clawcage_policy::{Plan, SANDBOX_HOME};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Most directory entries walked to expand deny/protect globs before refusing.
pub const MAX_GLOB_WALK: usize = 200_000;

/// One step of building the sandbox's root, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// Bind host `path` at the same path inside.
    Bind {
        /// Canonical host path.
        path: PathBuf,
        /// Read-write (else read-only).
        writable: bool,
        /// Directory (else a file).
        dir: bool,
        /// Bind an idmapped copy prepared by the supervisor (host root invoking
        /// on root-owned files): files owned by host root appear owned by the
        /// sandbox's root.
        idmap: bool,
    },
    /// Create a symlink `path` → `target` (e.g. `/lib` → `usr/lib`).
    Symlink {
        /// Where the link goes.
        path: PathBuf,
        /// What it points at, verbatim.
        target: PathBuf,
    },
    /// Private tmpfs (`/tmp`, `/home`), `size` bytes, mode 1777 or 0755.
    Tmpfs {
        /// Mount point.
        path: PathBuf,
        /// Size limit in bytes.
        size: u64,
        /// Permission bits of the root directory.
        mode: u32,
    },
    /// Fresh procfs for the new pid namespace, sensitive entries masked.
    Proc,
    /// Minimal /dev (null, zero, full, random, urandom, tty, shm; pts if `tty`).
    Dev {
        /// Mount a new devpts instance.
        tty: bool,
        /// Size of /dev/shm.
        shm_size: u64,
    },
    /// Hide the contents of a directory (empty read-only tmpfs over it).
    MaskDir(PathBuf),
    /// Hide the contents of a file (an empty read-only file over it).
    MaskFile(PathBuf),
    /// Re-bind a path inside a writable bind read-only.
    Protect(PathBuf),
    /// Hold the workspace's changes (`changes = "review"`): what is mounted
    /// at `path` becomes, read-only, the lower layer of an overlay mounted
    /// over it; the upper and work directories arrive from the supervisor as
    /// open descriptors (their host paths need not be reachable inside).
    Overlay {
        /// The workspace.
        path: PathBuf,
    },
}

/// Why a plan cannot be carried out on this host.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The workspace must exist and be a directory.
    #[error("workspace {path}: {source}")]
    Workspace {
        /// Workspace path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// A protected path is a symlink; protecting it is impossible without following it.
    #[error("protect path {0} is a symlink: refusing to run (a link could be swapped for a writable directory)")]
    ProtectSymlink(PathBuf),
    /// Reading a path failed (other than not existing).
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// `changes = "review"` without the task's overlay directories, or the reverse.
    #[error("{0}")]
    Review(&'static str),
    /// Glob expansion would walk too much.
    #[error("workspace {0} has more than {MAX_GLOB_WALK} entries: deny/protect globs cannot be expanded safely; list explicit paths instead")]
    TooLarge(PathBuf),
}

/// Resolve the plan against the host. `idmap_writable`: writable binds and
/// binds under the workspace get an idmapped copy (see [`MountOp::Bind`]).
pub fn resolve(plan: &Plan, tty: bool, idmap_writable: bool) -> Result<Vec<MountOp>, PlanError> {
    let ws = fs::canonicalize(&plan.workspace)
        .map_err(|source| PlanError::Workspace { path: plan.workspace.clone(), source })?;
    match (plan.direct_changes, &plan.review) {
        (false, None) => {
            return Err(PlanError::Review(
                "changes = \"review\" but the plan names no review directory: refusing to write the workspace directly",
            ))
        }
        (true, Some(_)) => return Err(PlanError::Review("the plan names a review directory but changes are direct")),
        _ => {}
    }
    let disk = plan.limits.disk.unwrap_or(1 << 30);
    // (depth, order-in-depth, op): fixed mounts sort after binds of the same
    // depth so that /tmp, /home, /proc and /dev are always the sandbox's own.
    let mut placed: Vec<(usize, u8, MountOp)> = Vec::new();
    let mut binds: Vec<(PathBuf, bool)> = Vec::new();
    for b in &plan.binds {
        let meta = match fs::symlink_metadata(&b.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // e.g. /lib32 on this host
            Err(source) => return Err(PlanError::Io { path: b.path.clone(), source }),
        };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&b.path).map_err(|source| PlanError::Io { path: b.path.clone(), source })?;
            placed.push((depth(&b.path), 0, MountOp::Symlink { path: b.path.clone(), target }));
        }
        let canon = match fs::canonicalize(&b.path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // dangling link
            Err(source) => return Err(PlanError::Io { path: b.path.clone(), source }),
        };
        if let Some(existing) = binds.iter_mut().find(|(p, _)| *p == canon) {
            existing.1 |= b.writable;
        } else {
            binds.push((canon, b.writable));
        }
    }
    for (path, writable) in &binds {
        let dir = fs::metadata(path).map_err(|source| PlanError::Io { path: path.clone(), source })?.is_dir();
        let idmap = idmap_writable && (*writable || path.starts_with(&ws));
        placed.push((depth(path), 0, MountOp::Bind { path: path.clone(), writable: *writable, dir, idmap }));
    }
    let home_root = Path::new(SANDBOX_HOME).parent().unwrap_or(Path::new("/home")).to_path_buf();
    placed.push((1, 1, MountOp::Proc));
    placed.push((1, 1, MountOp::Dev { tty, shm_size: disk }));
    placed.push((1, 1, MountOp::Tmpfs { path: "/tmp".into(), size: disk, mode: 0o1777 }));
    placed.push((depth(&home_root), 1, MountOp::Tmpfs { path: home_root, size: disk, mode: 0o755 }));
    // Reviewed changes: the overlay goes over the workspace right after the
    // bind that shows it, before anything mounted below it (binds under the
    // workspace, masks, protections) so that those sit on the overlay. A
    // workspace that is not writable cannot change: no overlay.
    let shown_by = binds.iter().filter(|(b, _)| ws.starts_with(b)).max_by_key(|(b, _)| depth(b));
    if plan.review.is_some() && shown_by.is_some_and(|(_, w)| *w) {
        placed.push((depth(&ws), 0, MountOp::Overlay { path: ws.clone() }));
    }
    placed.sort_by_key(|p| (p.0, p.1, matches!(p.2, MountOp::Overlay { .. })));
    let mut ops: Vec<MountOp> = placed.into_iter().map(|(_, _, op)| op).collect();

    // Masks and protections go on top of everything they might sit under.
    let visible = |p: &Path| binds.iter().any(|(b, _)| p.starts_with(b));
    let mut deny: Vec<PathBuf> = plan.deny.clone();
    let mut protect: Vec<PathBuf> = plan.protect.clone();
    if !plan.deny_globs.is_empty() || !plan.protect_globs.is_empty() {
        let (d, p) = expand_globs(&ws, &plan.deny_globs, &plan.protect_globs)?;
        deny.extend(d);
        protect.extend(p);
    }
    for d in deny {
        let Ok(canon) = fs::canonicalize(&d) else { continue };
        if !visible(&canon) {
            continue;
        }
        let is_dir = fs::metadata(&canon).map(|m| m.is_dir()).unwrap_or(false);
        let op = if is_dir { MountOp::MaskDir(canon) } else { MountOp::MaskFile(canon) };
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    for p in protect {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Err(PlanError::ProtectSymlink(p)),
            Ok(_) => {}
            Err(_) => continue, // nothing to protect yet (see README: review mode covers creation)
        }
        let writable_under = binds.iter().any(|(b, w)| *w && p.starts_with(b));
        let op = MountOp::Protect(p);
        if writable_under && !ops.contains(&op) {
            ops.push(op);
        }
    }
    Ok(ops)
}

fn depth(p: &Path) -> usize {
    p.components().filter(|c| matches!(c, Component::Normal(_))).count()
}

/// Walk the workspace (no symlinks followed) and collect paths matching the globs.
fn expand_globs(ws: &Path, deny: &[String], protect: &[String]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), PlanError> {
    let (mut d, mut p) = (Vec::new(), Vec::new());
    let mut stack = vec![ws.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) => continue, // unreadable: the sandbox cannot read it either
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_GLOB_WALK {
                return Err(PlanError::TooLarge(ws.to_path_buf()));
            }
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(ws) else { continue };
            let rel_s = rel.to_string_lossy();
            let denied = deny.iter().any(|g| glob_match(g, &rel_s));
            if denied {
                d.push(path.clone());
                continue; // nothing below a denied path matters
            }
            if protect.iter().any(|g| glob_match(g, &rel_s)) {
                p.push(path.clone());
            }
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            }
        }
    }
    Ok((d, p))
}

/// Match a relative path against a glob: `**` spans any number of components,
/// `*` and `?` stay within one, `[abc]` / `[!abc]` / `[a-z]` are classes.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let comps: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_components(&pat, &comps)
}

fn match_components(pat: &[&str], comps: &[&str]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((&"**", rest)) => (0..=comps.len()).any(|i| match_components(rest, &comps[i..])),
        Some((p, rest)) => match comps.split_first() {
            Some((c, crest)) => match_one(p.as_bytes(), c.as_bytes()) && match_components(rest, crest),
            None => false,
        },
    }
}

fn match_one(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => (0..=s.len()).any(|i| match_one(&p[1..], &s[i..])),
        (Some(b'?'), Some(_)) => match_one(&p[1..], &s[1..]),
        (Some(b'['), Some(&c)) => match p.iter().position(|&b| b == b']') {
            Some(end) if end > 1 => {
                let (neg, set) = match p[1] {
                    b'!' | b'^' => (true, &p[2..end]),
                    _ => (false, &p[1..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && match_one(&p[end + 1..], &s[1..])
            }
            _ => c == b'[' && match_one(&p[1..], &s[1..]),
        },
        (Some(a), Some(b)) => a == b && match_one(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("**/.env", ".env"));
        assert!(glob_match("**/.env", "a/b/.env"));
        assert!(!glob_match("**/.env", "a/.envrc"));
        assert!(glob_match("*.pem", "key.pem"));
        assert!(!glob_match("*.pem", "d/key.pem"));
        assert!(glob_match("secrets/**", "secrets/x/y"));
        assert!(glob_match(".env*", ".env.local"));
        assert!(glob_match("[a-c]?.txt", "bx.txt"));
        assert!(!glob_match("[!a-c]?.txt", "bx.txt"));
    }
}
