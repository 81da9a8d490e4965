//! Host-side resolution of a [`Plan`] into concrete mount operations.
//!
//! Runs in the supervisor before the sandbox exists, with the host's view of
//! the filesystem: symlinks are resolved here (a bind always lands on the
//! canonical path), deny and protect globs are expanded, and the order is
//! fixed so that parents are mounted before their children.

use clawcage_policy::{glob_match, Bind, Plan, SANDBOX_HOME};
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
    /// Make `names` (relative to the read-only bind at `path`) absent: a
    /// read-only overlay of the bind under a layer of whiteouts, mounted
    /// right after the bind.
    Hide {
        /// The read-only bind (mount point of the overlay).
        path: PathBuf,
        /// Paths relative to `path` that must not exist inside.
        names: Vec<PathBuf>,
    },
    /// Hide the contents of a directory (empty read-only tmpfs over it).
    MaskDir(PathBuf),
    /// Hide the contents of a file (an empty read-only file over it).
    MaskFile(PathBuf),
    /// Re-bind a path inside a writable bind read-only.
    Protect(PathBuf),
    /// Bind the host file or directory `src` read-only at `dst` (the egress
    /// CA bundle, the plan's `mounts`); a missing parent of `dst` is made in
    /// the sandbox's root when no bind covers it.
    File {
        /// Host file or directory.
        src: PathBuf,
        /// Path inside the sandbox.
        dst: PathBuf,
        /// Attach a detached copy the supervisor made (host root: init may
        /// not be able to walk to `src`, e.g. through the 0700 state dir).
        tree: bool,
        /// `src` is a directory.
        dir: bool,
    },
    /// Hold the workspace's changes (`changes = "review"`): what is mounted
    /// at `path` becomes, read-only, the lower layer of an overlay mounted
    /// over it; the upper and work directories arrive from the supervisor as
    /// open descriptors (their host paths need not be reachable inside).
    Overlay {
        /// The workspace.
        path: PathBuf,
    },
    /// Bind a directory inside a writable bind onto itself, writable: a mount
    /// point cannot be renamed or removed, so the sandbox cannot move a
    /// protected or denied path's ancestor aside and plant its own copy.
    Pin(PathBuf),
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
    /// A read-only mount's destination is not a plain absolute path, or it
    /// lies over or under a path the policy shows.
    #[error("mount destination {0}: must be a plain absolute path apart from the policy's paths")]
    Mount(PathBuf),
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
    for b in &expand_root(&plan.binds)? {
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
    // Deny paths as the host resolves them, outermost only (nothing below a
    // denied path needs a mount of its own), and protect paths.
    let mut deny: Vec<PathBuf> = plan.deny.clone();
    let mut protect: Vec<PathBuf> = plan.protect.clone();
    if !plan.deny_globs.is_empty() || !plan.protect_globs.is_empty() {
        let (d, p) = expand_globs(&ws, &plan.deny_globs, &plan.protect_globs)?;
        deny.extend(d);
        protect.extend(p);
    }
    let mut denied: Vec<PathBuf> = deny.iter().filter_map(|d| fs::canonicalize(d).ok()).collect();
    denied.sort_by_key(|d| depth(d));
    let mut outermost: Vec<PathBuf> = Vec::new();
    for d in denied {
        if !outermost.iter().any(|o| d.starts_with(o)) {
            outermost.push(d);
        }
    }
    let is_denied = |p: &Path| outermost.iter().any(|d| p.starts_with(d));
    // A denied bind (or one below a denied path) is simply not made.
    binds.retain(|(b, _)| !is_denied(b));
    placed.retain(|(_, _, op)| !matches!(op, MountOp::Symlink { path, .. } if is_denied(path)));

    // Denied paths inside a read-only bind are whited out of an overlay of
    // it (absent: ENOENT); inside a writable bind they are masked.
    let mut hidden: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut masks: Vec<MountOp> = Vec::new();
    for d in &outermost {
        let holder = binds.iter().filter(|(b, _)| d.starts_with(b)).max_by_key(|(b, _)| depth(b));
        match holder {
            None => {} // not visible anyway
            Some((root, false)) => {
                let Ok(rel) = d.strip_prefix(root) else { continue };
                match hidden.iter_mut().find(|(r, _)| r == root) {
                    Some((_, names)) => names.push(rel.to_path_buf()),
                    None => hidden.push((root.clone(), vec![rel.to_path_buf()])),
                }
            }
            Some((_, true)) => {
                let is_dir = fs::metadata(d).map(|m| m.is_dir()).unwrap_or(false);
                pin_ancestors(&mut masks, &binds, d);
                masks.push(if is_dir { MountOp::MaskDir(d.clone()) } else { MountOp::MaskFile(d.clone()) });
            }
        }
    }

    for (path, writable) in &binds {
        let dir = fs::metadata(path).map_err(|source| PlanError::Io { path: path.clone(), source })?.is_dir();
        let idmap = idmap_writable && (*writable || path.starts_with(&ws));
        placed.push((depth(path), 0, MountOp::Bind { path: path.clone(), writable: *writable, dir, idmap }));
        // Right after its bind: binds below it go on top of the overlay.
        if let Some((_, names)) = hidden.iter().find(|(r, _)| r == path) {
            placed.push((depth(path), 0, MountOp::Hide { path: path.clone(), names: names.clone() }));
        }
    }
    // Reviewed changes: the overlay goes over the workspace right after the
    // bind that shows it (a stable sort keeps it behind the binds of its
    // depth), before anything mounted below it (binds under the workspace,
    // masks, protections) so that those sit on the overlay. A workspace that
    // is not writable cannot change: no overlay.
    let shown_by = binds.iter().filter(|(b, _)| ws.starts_with(b)).max_by_key(|(b, _)| depth(b));
    if plan.review.is_some() && shown_by.is_some_and(|(_, w)| *w) {
        placed.push((depth(&ws), 0, MountOp::Overlay { path: ws.clone() }));
    }
    let home_root = Path::new(SANDBOX_HOME).parent().unwrap_or(Path::new("/home")).to_path_buf();
    placed.push((1, 1, MountOp::Proc));
    placed.push((1, 1, MountOp::Dev { tty, shm_size: disk }));
    placed.push((1, 1, MountOp::Tmpfs { path: "/tmp".into(), size: disk, mode: 0o1777 }));
    placed.push((depth(&home_root), 1, MountOp::Tmpfs { path: home_root, size: disk, mode: 0o755 }));
    // A stable sort: each Hide stays right behind its Bind.
    placed.sort_by_key(|p| (p.0, p.1));
    let mut ops: Vec<MountOp> = placed.into_iter().map(|(_, _, op)| op).collect();

    // Masks and protections go on top of everything they might sit under.
    ops.extend(masks);
    // The egress CA bundle: at its own path and over the system bundles
    // that the sandbox can see (on top of the bind that shows them).
    if let Some(bundle) = plan.network.as_ref().and_then(|n| n.ca_bundle.as_ref()) {
        let src = fs::canonicalize(bundle).map_err(|source| PlanError::Io { path: bundle.clone(), source })?;
        ops.push(MountOp::File {
            src: src.clone(),
            dst: PathBuf::from(clawcage_policy::SANDBOX_CA_FILE),
            tree: false,
            dir: false,
        });
        for system in clawcage_policy::SYSTEM_CA_BUNDLES {
            let Ok(canon) = fs::canonicalize(system) else { continue };
            let visible = binds.iter().any(|(b, _)| canon.starts_with(b)) && !is_denied(&canon);
            if visible && fs::metadata(&canon).is_ok_and(|m| m.is_file()) {
                let op = MountOp::File { src: src.clone(), dst: canon, tree: false, dir: false };
                if !ops.contains(&op) {
                    ops.push(op);
                }
            }
        }
    }
    // The caller's read-only mounts, on top like the bundle. A destination
    // must be a plain absolute path outside everything the policy shows, so
    // that it can neither cover a bind nor be covered by one.
    for m in &plan.mounts {
        let plain = m.dst.is_absolute()
            && m.dst.components().skip(1).all(|c| matches!(c, std::path::Component::Normal(_)))
            && m.dst.components().count() > 1;
        let clash = binds.iter().any(|(b, _)| b.starts_with(&m.dst) || m.dst.starts_with(b));
        if !plain || clash {
            return Err(PlanError::Mount(m.dst.clone()));
        }
        let src = fs::canonicalize(&m.src).map_err(|source| PlanError::Io { path: m.src.clone(), source })?;
        let dir = fs::metadata(&src).map_err(|source| PlanError::Io { path: src.clone(), source })?.is_dir();
        ops.push(MountOp::File { src, dst: m.dst.clone(), tree: false, dir });
    }
    // Parents first: a protect mount made after one below it would hide it.
    protect.sort_by_key(|p| depth(p));
    for p in protect {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Err(PlanError::ProtectSymlink(p)),
            Ok(_) => {}
            Err(_) => continue, // nothing to protect yet (see README: review mode covers creation)
        }
        let writable_under = binds.iter().any(|(b, w)| *w && p.starts_with(b));
        let op = MountOp::Protect(p.clone());
        if writable_under && !is_denied(&p) && !ops.contains(&op) {
            pin_ancestors(&mut ops, &binds, &p);
            ops.push(op);
        }
    }
    Ok(ops)
}

/// [`MountOp::Pin`] every directory strictly between the innermost writable
/// bind holding `path` and `path` itself, parents first (a pin made later
/// would hide the mounts below it, so each goes in only once and early).
fn pin_ancestors(ops: &mut Vec<MountOp>, binds: &[(PathBuf, bool)], path: &Path) {
    let holder = binds.iter().filter(|(b, _)| path.starts_with(b)).max_by_key(|(b, _)| depth(b));
    let Some((root, true)) = holder else { return };
    let mut chain: Vec<&Path> = path.ancestors().skip(1).take_while(|a| a.starts_with(root) && a != root).collect();
    chain.reverse();
    for dir in chain {
        let op = MountOp::Pin(dir.to_path_buf());
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
}

/// Host directories never bound, even under a policy that reads `/`: the
/// sandbox has its own `/proc` and `/dev`, and no `/sys` at all.
const NEVER_BOUND: &[&str] = &["/proc", "/sys", "/dev"];

/// A bind of `/` itself cannot be mounted (the new root is the sandbox's own
/// tmpfs), so it becomes one bind per top-level entry of the host root,
/// except [`NEVER_BOUND`] and directories with other mounts beneath them (a
/// user namespace may not bind those without their submounts, and binding
/// them recursively would show host mounts nobody listed); explicit binds of
/// top-level entries keep their own mode.
fn expand_root(binds: &[Bind]) -> Result<Vec<Bind>, PlanError> {
    let Some(root) = binds.iter().find(|b| b.path == Path::new("/")) else { return Ok(binds.to_vec()) };
    let io = |path: &str| {
        let path = PathBuf::from(path);
        move |source| PlanError::Io { path, source }
    };
    let mut out: Vec<Bind> = binds.iter().filter(|b| b.path != Path::new("/")).cloned().collect();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(io("/proc/self/mountinfo"))?;
    let mounts: Vec<PathBuf> = mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape_mountinfo).collect();
    let mut names = Vec::new();
    for entry in fs::read_dir("/").map_err(io("/"))? {
        names.push(entry.map_err(io("/"))?.path());
    }
    names.sort();
    for path in names {
        let has_submounts = mounts.iter().any(|m| m != &path && m.starts_with(&path));
        let never = NEVER_BOUND.iter().any(|n| path == Path::new(n));
        if never || has_submounts || out.iter().any(|b| b.path == path) {
            continue;
        }
        out.push(Bind { path, writable: root.writable });
    }
    Ok(out)
}

/// A mount point as /proc/self/mountinfo writes it (`\\040` for a space, ...).
fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_mounts_land_at_their_destination_and_never_over_a_policy_path() {
        let root = std::env::temp_dir().join(format!("clawcage-mountplan-mounts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("ws")).unwrap();
        fs::create_dir_all(root.join("skill")).unwrap();
        let mut plan = Plan {
            workspace: root.join("ws"),
            binds: vec![Bind { path: root.join("ws"), writable: true }],
            deny: vec![],
            deny_globs: vec![],
            protect: vec![],
            protect_globs: vec![],
            limits: Default::default(),
            env: vec![],
            allow_missing: vec![],
            direct_changes: true,
            review: None,
            network: None,
            mounts: vec![clawcage_policy::MountAt { src: root.join("skill"), dst: "/skills/x".into() }],
        };
        let ops = resolve(&plan, false, false).unwrap();
        let want = MountOp::File {
            src: fs::canonicalize(root.join("skill")).unwrap(),
            dst: "/skills/x".into(),
            tree: false,
            dir: true,
        };
        assert!(ops.contains(&want), "{ops:?}");
        // Over the workspace, under it, relative, climbing, or the root: refused.
        for dst in [root.join("ws/sub"), root.clone(), "skills".into(), "/skills/../etc".into(), "/".into()] {
            plan.mounts[0].dst = dst.clone();
            assert!(matches!(resolve(&plan, false, false), Err(PlanError::Mount(_))), "{dst:?}");
        }
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b\\011c"), PathBuf::from("/a b\tc"));
        assert_eq!(unescape_mountinfo("/plain\\x"), PathBuf::from("/plain\\x"));
    }

    #[test]
    fn slash_becomes_top_level_binds_without_proc_sys_dev() {
        let binds = vec![Bind { path: "/".into(), writable: false }, Bind { path: "/tmp".into(), writable: true }];
        let out = expand_root(&binds).unwrap();
        assert!(out.iter().all(|b| b.path != Path::new("/")));
        for never in NEVER_BOUND {
            assert!(out.iter().all(|b| b.path != Path::new(never)), "{never} bound");
        }
        assert!(out.contains(&Bind { path: "/usr".into(), writable: false }));
        assert!(out.contains(&Bind { path: "/tmp".into(), writable: true }), "an explicit bind keeps its mode");
    }

    #[test]
    fn deny_paths_become_whiteouts_masks_or_missing_binds() {
        let root = std::env::temp_dir().join(format!("clawcage-plan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["ws/app", "ro/sub", "gone/x"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["ws/app/.env", "ro/sub/key", "ro/keep"] {
            fs::write(root.join(f), "x").unwrap();
        }
        let bind = |p: &str, writable| Bind { path: root.join(p), writable };
        let plan = Plan {
            workspace: root.join("ws"),
            binds: vec![bind("ws", true), bind("ro", false), bind("gone", false), bind("gone/x", false)],
            deny: vec![root.join("ro/sub/key"), root.join("gone"), root.join("ws/app/.env")],
            deny_globs: vec![],
            protect: vec![],
            protect_globs: vec![],
            limits: Default::default(),
            env: vec![],
            allow_missing: vec![],
            direct_changes: true,
            review: None,
            network: None,
            mounts: vec![],
        };
        let ops = resolve(&plan, false, false).unwrap();
        let _ = fs::remove_dir_all(&root);
        let bound: Vec<&PathBuf> =
            ops.iter().filter_map(|o| if let MountOp::Bind { path, .. } = o { Some(path) } else { None }).collect();
        assert_eq!(bound, vec![&root.join("ws"), &root.join("ro")], "denied binds are not made");
        let at = |op: &MountOp| ops.iter().position(|o| o == op).unwrap();
        let hide = MountOp::Hide { path: root.join("ro"), names: vec![PathBuf::from("sub/key")] };
        let ro = ops.iter().position(|o| matches!(o, MountOp::Bind { path, .. } if *path == root.join("ro"))).unwrap();
        assert_eq!(at(&hide), ro + 1, "the overlay goes right after its bind: {ops:#?}");
        let mask = at(&MountOp::MaskFile(root.join("ws/app/.env")));
        assert!(at(&MountOp::Pin(root.join("ws/app"))) < mask, "{ops:#?}");
    }

    #[test]
    fn ancestors_of_protected_paths_are_pinned_parents_first_once() {
        let binds = vec![(PathBuf::from("/ws"), true), (PathBuf::from("/usr"), false)];
        let mut ops = Vec::new();
        pin_ancestors(&mut ops, &binds, Path::new("/ws/a/b/c"));
        pin_ancestors(&mut ops, &binds, Path::new("/ws/a/d"));
        pin_ancestors(&mut ops, &binds, Path::new("/usr/x/y"));
        pin_ancestors(&mut ops, &binds, Path::new("/ws/top"));
        assert_eq!(ops, vec![MountOp::Pin("/ws/a".into()), MountOp::Pin("/ws/a/b".into())]);
    }

    #[test]
    fn the_ca_bundle_is_bound_at_its_path_and_over_visible_system_bundles() {
        let root = std::env::temp_dir().join(format!("clawcage-mountplan-ca-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("ws")).unwrap();
        let bundle = root.join("bundle.pem");
        fs::write(&bundle, "pem").unwrap();
        let policy = clawcage_policy::parse_str("[network]\nallow = [\"a.test\"]\n", "p.toml").unwrap();
        let ctx = clawcage_policy::Context {
            workspace: root.join("ws"),
            host_home: root.clone(),
            host_env: Default::default(),
            extra_env: vec![],
            default_changes: clawcage_policy::Changes::Direct,
        };
        let mut plan = clawcage_policy::plan(&policy, &ctx);
        plan.set_ca_bundle(bundle.clone());
        let ops = resolve(&plan, false, false).unwrap();
        let files: Vec<(&PathBuf, &PathBuf)> = ops
            .iter()
            .filter_map(|o| if let MountOp::File { src, dst, .. } = o { Some((src, dst)) } else { None })
            .collect();
        assert!(files.contains(&(&bundle, &PathBuf::from(clawcage_policy::SANDBOX_CA_FILE))), "{files:?}");
        let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if let Ok(canon) = fs::canonicalize(system) {
            assert!(files.contains(&(&bundle, &canon)), "the default profile shows /etc: {files:?}");
        }
        // No network, no bundle.
        plan.network = None;
        assert!(!resolve(&plan, false, false).unwrap().iter().any(|o| matches!(o, MountOp::File { .. })));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn review_overlays_the_workspace_right_after_its_bind_and_below_masks() {
        let root = std::env::temp_dir().join(format!("clawcage-mountplan-review-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("ws/app")).unwrap();
        fs::create_dir_all(root.join("ws/vendor")).unwrap();
        fs::write(root.join("ws/app/.env"), "x").unwrap();
        let bind = |p: &str, writable| Bind { path: root.join(p), writable };
        let mut plan = Plan {
            workspace: root.join("ws"),
            binds: vec![bind("ws", true), bind("ws/vendor", false)],
            deny: vec![root.join("ws/app/.env")],
            deny_globs: vec![],
            protect: vec![],
            protect_globs: vec![],
            limits: Default::default(),
            env: vec![],
            allow_missing: vec![],
            direct_changes: false,
            review: None,
            network: None,
            mounts: vec![],
        };
        let refused = resolve(&plan, false, false);
        assert!(matches!(refused, Err(PlanError::Review(_))), "review without layers must refuse: {refused:?}");
        plan.review = Some(clawcage_policy::ReviewLayers { dir: root.join("layers") });
        let ops = resolve(&plan, false, false).unwrap();
        let at = |f: &dyn Fn(&MountOp) -> bool| ops.iter().position(f).unwrap();
        let ws_bind = at(&|o| matches!(o, MountOp::Bind { path, .. } if *path == root.join("ws")));
        let overlay = at(&|o| matches!(o, MountOp::Overlay { path } if *path == root.join("ws")));
        let vendor = at(&|o| matches!(o, MountOp::Bind { path, .. } if *path == root.join("ws/vendor")));
        let mask = at(&|o| matches!(o, MountOp::MaskFile(p) if *p == root.join("ws/app/.env")));
        assert_eq!(overlay, ws_bind + 1, "{ops:#?}");
        assert!(vendor > overlay && mask > overlay, "mounts below the workspace sit on the overlay: {ops:#?}");
        plan.direct_changes = true;
        assert!(matches!(resolve(&plan, false, false), Err(PlanError::Review(_))));
        // A read-only workspace cannot change: no overlay.
        plan.direct_changes = false;
        plan.binds[0].writable = false;
        assert!(!resolve(&plan, false, false).unwrap().iter().any(|o| matches!(o, MountOp::Overlay { .. })));
        let _ = fs::remove_dir_all(&root);
    }
}
