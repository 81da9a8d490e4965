//! Landlock: the filesystem policy again, enforced by an LSM on the paths
//! inside the new root (defence in depth behind the mount namespace), plus
//! signal and abstract-unix-socket scoping.

use crate::mountplan::MountOp;
use ::landlock::{
    Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};
use std::path::Path;

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
/// tmpfs mounts everything, /dev and /proc read plus file writes.
pub fn apply(ops: &[MountOp]) -> Result<Status, String> {
    let all = AccessFs::from_all(ABI_WANTED);
    let read = AccessFs::from_read(ABI_WANTED);
    let mut rules: Vec<(&Path, BitFlags<AccessFs>)> = vec![(Path::new("/"), AccessFs::ReadDir.into())];
    for op in ops {
        match op {
            MountOp::Bind { path, writable, dir, .. } => {
                let access = if *writable { all } else { read };
                // Rules on a file may only carry file rights.
                rules.push((path, if *dir { access } else { access & AccessFs::from_file(ABI_WANTED) }));
            }
            MountOp::Tmpfs { path, .. } | MountOp::Overlay { path } => rules.push((path, all)),
            MountOp::File { dst, .. } => rules.push((dst, read & AccessFs::from_file(ABI_WANTED))),
            MountOp::Proc => rules.push((Path::new("/proc"), read | AccessFs::WriteFile)),
            MountOp::Dev { .. } => {
                rules.push((Path::new("/dev"), read | AccessFs::WriteFile | AccessFs::IoctlDev));
                rules.push((Path::new("/dev/shm"), all));
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
        let fd = PathFd::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let status = ruleset.restrict_self().map_err(|e| e.to_string())?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Status::Full,
        RulesetStatus::PartiallyEnforced => Status::Partial,
        RulesetStatus::NotEnforced => Status::None,
    })
}
