//! Landlock: the filesystem policy again, enforced by an LSM on the paths
//! inside the new root (defence in depth behind the mount namespace), plus
//! signal and abstract-unix-socket scoping.

use crate::mountplan::MountOp;
use ::landlock::{
    Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};
use std::path::{Path, PathBuf};

/// The newest Landlock ABI whose rights we ask for; older kernels get what they support.
const ABI_WANTED: ABI = ABI::V6;

/// How much of the ruleset the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every requested right and scope.
    Full,
    /// Some rights (newer than this kernel) are not enforced.
    Partial,
    /// Landlock is unavailable.
    None,
}

/// Restrict the calling process (and its future children) to the sandbox's
/// paths: read-only binds get read/execute, writable binds and the private
/// tmpfs mounts everything, /dev and /proc read plus file writes. A read-only
/// bind with deny paths in it ([`MountOp::Hide`]) is granted entry by entry
/// around them ([`rules_around`]), so Landlock denies them too.
pub fn apply(ops: &[MountOp]) -> Result<Status, String> {
    let all = AccessFs::from_all(ABI_WANTED);
    let read = AccessFs::from_read(ABI_WANTED);
    let file = AccessFs::from_file(ABI_WANTED);
    let hides: Vec<(&PathBuf, &Vec<PathBuf>)> = ops
        .iter()
        .filter_map(|op| match op {
            MountOp::Hide { path, names } => Some((path, names)),
            _ => None,
        })
        .collect();
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = vec![("/".into(), AccessFs::ReadDir.into())];
    for op in ops {
        let hidden_in = match op {
            MountOp::Bind { path, writable: false, dir: true, .. } => hides.iter().find(|(p, _)| *p == path),
            _ => None,
        };
        if let Some((root, names)) = hidden_in {
            for (entry, is_dir) in rules_around(root, names) {
                rules.push((entry, if is_dir { read } else { read & file }));
            }
            continue;
        }
        match op {
            MountOp::Bind { path, writable, dir, .. } => {
                let access = if *writable { all } else { read };
                // Rules on a file may only carry file rights.
                rules.push((path.clone(), if *dir { access } else { access & file }));
            }
            MountOp::Tmpfs { path, .. } | MountOp::Overlay { path } => rules.push((path.clone(), all)),
            MountOp::File { dst, .. } => rules.push((dst.clone(), read & file)),
            MountOp::Proc => rules.push(("/proc".into(), read | AccessFs::WriteFile)),
            MountOp::Dev { .. } => {
                rules.push(("/dev".into(), read | AccessFs::WriteFile | AccessFs::IoctlDev));
                rules.push(("/dev/shm".into(), all));
            }
            _ => {}
        }
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(|e| e.to_string())?
        .scope(Scope::from_all(ABI_WANTED))
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?;
    for (path, access) in rules {
        let fd = PathFd::new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let status = ruleset.restrict_self().map_err(|e| e.to_string())?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Status::Full,
        RulesetStatus::PartiallyEnforced => Status::Partial,
        RulesetStatus::NotEnforced => Status::None,
    })
}

/// The entries of the read-only tree at `root` that a Landlock rule may
/// name without also covering one of `hidden` (paths relative to `root`):
/// every entry of `root` and of the directories on the way to a hidden path,
/// except the hidden paths and those directories themselves (they keep only
/// the ReadDir that `/` grants). Symlinks need no rule (access is checked on
/// their target); unreadable directories yield nothing (less access, never
/// more). Returns (path, is a directory).
pub fn rules_around(root: &Path, hidden: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    let mut chain: Vec<PathBuf> = Vec::new();
    for h in hidden {
        for a in h.ancestors().skip(1) {
            if !chain.iter().any(|c| c == a) {
                chain.push(a.to_path_buf());
            }
        }
    }
    chain.sort();
    let mut out = Vec::new();
    for rel in &chain {
        let Ok(entries) = std::fs::read_dir(root.join(rel)) else { continue };
        for entry in entries.flatten() {
            let name = rel.join(entry.file_name());
            if hidden.contains(&name) || chain.contains(&name) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_symlink() => {}
                Ok(t) => out.push((entry.path(), t.is_dir())),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_around_hidden_paths_cover_their_siblings_only() {
        let root = std::env::temp_dir().join(format!("clawcage-landlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["a/b/keys", "a/c", "d"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a/b/secret", "a/b/fine", "a/top", "e"] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink("/etc", root.join("a/b/link")).unwrap();
        let got = rules_around(&root, &["a/b/secret".into(), "a/b/keys".into()]);
        let _ = std::fs::remove_dir_all(&root);
        let want: Vec<(PathBuf, bool)> =
            [("a/b/fine", false), ("a/c", true), ("a/top", false), ("d", true), ("e", false)]
                .iter()
                .map(|(p, d)| (root.join(p), *d))
                .collect();
        assert_eq!(got, want);
    }
}
