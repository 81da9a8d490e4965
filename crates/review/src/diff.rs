//! Rendering changes as a unified diff for people (`clawcage diff TASK`).
//!
//! Text files get `---`/`+++` headers and hunks (`a/` is the real workspace,
//! `b/` the task's version); binary files, symlinks, directories and mode
//! changes are named on a line of their own, as git does.

use crate::manifest::Kind;
use crate::scan::Change;
use similar::TextDiff;
use std::fmt::Write;
use std::fs;
use std::path::Path;

/// Files larger than this are named, not diffed.
pub const MAX_DIFF_BYTES: u64 = 4 * 1024 * 1024;

/// A summary line: `3 changes: 1 added, 1 modified, 1 deleted`.
pub fn summary(changes: &[Change]) -> String {
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
    let added = count(|c| matches!(c, Change::Added { .. }));
    let modified = count(|c| matches!(c, Change::Modified { .. }));
    let deleted = count(|c| matches!(c, Change::Deleted { .. }));
    let n = changes.len();
    format!("{n} change{}: {added} added, {modified} modified, {deleted} deleted", if n == 1 { "" } else { "s" })
}

/// The unified diff of `changes` (from [`crate::scan::scan`] of `lower` and `upper`).
pub fn render(lower: &Path, upper: &Path, changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let rel = c.path();
        let name = rel.display();
        match c {
            Change::Added { kind: Kind::Dir, .. } => {
                let _ = writeln!(out, "directory added: {name}");
            }
            Change::Deleted { kind: Kind::Dir, .. } => {
                let _ = writeln!(out, "directory deleted: {name}");
            }
            Change::Added { kind, mode, .. } => {
                let _ = writeln!(out, "diff a/{name} b/{name}\nnew file mode {}", mode_str(*kind, *mode));
                body(&mut out, rel, None, Some(&upper.join(rel)), *kind);
            }
            Change::Deleted { kind, .. } => {
                let mode = fs::symlink_metadata(lower.join(rel)).map(|m| std::os::unix::fs::MetadataExt::mode(&m));
                let _ =
                    writeln!(out, "diff a/{name} b/{name}\ndeleted file mode {}", mode_str(*kind, mode.unwrap_or(0)));
                body(&mut out, rel, Some(&lower.join(rel)), None, *kind);
            }
            Change::Modified { kind: Kind::Dir, old_mode, new_mode, .. } => {
                let _ = writeln!(out, "directory mode changed: {name} {old_mode:o} -> {new_mode:o}");
            }
            Change::Modified { kind, old_mode, new_mode, content, .. } => {
                let _ = writeln!(out, "diff a/{name} b/{name}");
                if old_mode != new_mode {
                    let _ = writeln!(
                        out,
                        "old mode {}\nnew mode {}",
                        mode_str(*kind, *old_mode),
                        mode_str(*kind, *new_mode)
                    );
                }
                if *content {
                    body(&mut out, rel, Some(&lower.join(rel)), Some(&upper.join(rel)), *kind);
                }
            }
        }
    }
    out
}

/// `100644`-style mode as git writes it.
fn mode_str(kind: Kind, mode: u32) -> String {
    let ty = match kind {
        Kind::Symlink => return "120000".into(), // as git: a link has no permission bits
        Kind::Dir => 0o040000,
        _ => 0o100000,
    };
    format!("{:06o}", ty | (mode & 0o7777))
}

/// What a side of the diff holds: text lines, or a reason it is not shown.
enum Side {
    Text(String),
    Binary,
    Large(u64),
}

fn read_side(path: &Path, kind: Kind) -> Side {
    if kind == Kind::Symlink {
        return match fs::read_link(path) {
            Ok(t) => Side::Text(format!("{}\n", t.display())),
            Err(_) => Side::Binary,
        };
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.len() > MAX_DIFF_BYTES => return Side::Large(m.len()),
        Err(_) => return Side::Binary,
        _ => {}
    }
    match fs::read(path) {
        Ok(bytes) if bytes.iter().take(8192).any(|&b| b == 0) => Side::Binary,
        Ok(bytes) => String::from_utf8(bytes).map_or(Side::Binary, Side::Text),
        Err(_) => Side::Binary,
    }
}

fn body(out: &mut String, rel: &Path, old: Option<&Path>, new: Option<&Path>, kind: Kind) {
    let name = rel.display();
    let old_side = old.map(|p| read_side(p, kind));
    let new_side = new.map(|p| read_side(p, kind));
    let text = |s: &Option<Side>| match s {
        None => Some(String::new()),
        Some(Side::Text(t)) => Some(t.clone()),
        _ => None,
    };
    match (text(&old_side), text(&new_side)) {
        (Some(a), Some(b)) => {
            let (from, to) = (
                if old.is_some() { format!("a/{name}") } else { "/dev/null".into() },
                if new.is_some() { format!("b/{name}") } else { "/dev/null".into() },
            );
            if kind == Kind::Symlink {
                let _ = writeln!(out, "symbolic link");
            }
            let diff = TextDiff::from_lines(&a, &b);
            let _ = write!(out, "{}", diff.unified_diff().context_radius(3).header(&from, &to));
        }
        _ => {
            let large = [&old_side, &new_side].into_iter().find_map(|s| match s {
                Some(Side::Large(n)) => Some(*n),
                _ => None,
            });
            match large {
                Some(n) => {
                    let _ = writeln!(out, "Large file {name} ({n} bytes): diff not shown");
                }
                None => {
                    let _ = writeln!(out, "Binary file {name} differs");
                }
            }
        }
    }
}
