//! Building the sandbox's root inside its mount namespace (runs in init,
//! before any untrusted code): a tmpfs root, pivot_root into it, the mount
//! operations in order, the old root detached.

use crate::mountplan::MountOp;
use crate::sys;
use crate::{nix_step, step, StepError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, mkdir, pivot_root};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const OLD_ROOT: &str = "/oldroot";
/// Where the task's overlay layers are attached while the overlay is mounted.
const LAYERS: &str = "/.clawcage-layers";
/// An empty read-only file in the sandbox root, bound over masked files.
const EMPTY_FILE: &str = "/.clawcage-empty";

/// procfs entries whose contents must not be visible (as OCI runtimes mask them).
const PROC_MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "kallsyms",
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
    "config.gz",
    "sysrq-trigger",
];
const PROC_MASKED_DIRS: &[&str] = &["acpi", "asound", "scsi", "firmware", "driver"];
const PROC_READ_ONLY: &[&str] = &["sys", "bus", "fs", "irq"];
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// The attributes of every read-only mount: no writes, no set-id, no devices.
const READ_ONLY: u64 = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;

/// Build the root from `ops`; `fds` holds, in the order of the ops that use
/// them, the supervisor's idmapped trees (one per bind marked `idmap`) and
/// the upper and work directories of an overlay.
pub fn build(ops: &[MountOp], fds: Vec<OwnedFd>) -> Result<(), StepError> {
    let mut fds = fds.into_iter();
    let mut next_fd = |path: &Path, what: &'static str| {
        fds.next().ok_or_else(|| StepError {
            step: what,
            path: path.to_path_buf(),
            source: std::io::Error::other("the supervisor sent too few descriptors"),
        })
    };
    // Nothing we mount may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(nix_step("make / a slave mount", "/"))?;
    // The new root is a small tmpfs that only holds mount points.
    mount(Some("clawcage"), "/tmp", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755,size=1m"))
        .map_err(nix_step("mount root tmpfs", "/tmp"))?;
    chdir("/tmp").map_err(nix_step("chdir", "/tmp"))?;
    mkdir("oldroot", nix::sys::stat::Mode::from_bits_truncate(0o700)).map_err(nix_step("mkdir", "/tmp/oldroot"))?;
    pivot_root(".", "oldroot").map_err(nix_step("pivot_root", "/tmp"))?;
    chdir("/").map_err(nix_step("chdir", "/"))?;
    fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o444)
        .open(EMPTY_FILE)
        .map_err(step("create", EMPTY_FILE))?;

    for op in ops {
        match op {
            MountOp::Bind { path, writable, dir, idmap } => {
                ensure_mountpoint(path, *dir)?;
                if *idmap {
                    let fd = next_fd(path, "idmapped bind")?;
                    sys::move_mount_fd(fd.as_raw_fd(), path).map_err(step("attach idmapped bind", path))?;
                } else {
                    bind(&old(path), path)?;
                }
                let ro = if *writable { 0 } else { sys::MOUNT_ATTR_RDONLY };
                set_attr(path, ro | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)?;
            }
            MountOp::Symlink { path, target } => {
                if fs::symlink_metadata(path).is_err() {
                    ensure_dir(path.parent().unwrap_or(Path::new("/")))?;
                    symlink(target, path).map_err(step("symlink", path))?;
                }
            }
            MountOp::Tmpfs { path, size, mode } => {
                ensure_dir(path)?;
                tmpfs(path, *size, *mode, MsFlags::empty())?;
                if path == Path::new("/home") {
                    let home = Path::new(clawcage_policy::SANDBOX_HOME);
                    fs::create_dir(home).map_err(step("mkdir", home))?;
                    fs::set_permissions(home, fs::Permissions::from_mode(0o700)).map_err(step("chmod", home))?;
                }
            }
            MountOp::Proc => proc()?,
            MountOp::Dev { tty, shm_size } => dev(*tty, *shm_size)?,
            MountOp::MaskDir(path) => mask_dir(path)?,
            MountOp::MaskFile(path) => mask_file(path)?,
            MountOp::Hide { path, names } => hide(path, names)?,
            MountOp::Pin(path) => {
                rbind(path, path)?;
                set_attr(path, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)?;
            }
            MountOp::Protect(path) => {
                // Recursive: masks already made below a protected path stay.
                rbind(path, path)?;
                set_attr(path, READ_ONLY)?;
            }
            MountOp::File { src, dst, tree, dir } => {
                ensure_mountpoint(dst, *dir)?;
                if *tree {
                    let fd = next_fd(dst, "file bind")?;
                    sys::move_mount_fd(fd.as_raw_fd(), dst).map_err(step("attach file bind", dst))?;
                } else {
                    bind(&old(src), dst)?;
                }
                set_attr(dst, READ_ONLY)?;
            }
            MountOp::Overlay { path } => {
                let layers = next_fd(path, "overlay layers")?;
                overlay(path, &layers)?;
            }
        }
    }

    // Proc was mounted while the host's procfs was still reachable (the
    // kernel requires a fully visible procfs to exist); now let go of the host.
    umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(nix_step("detach old root", OLD_ROOT))?;
    fs::remove_dir(OLD_ROOT).map_err(step("rmdir", OLD_ROOT))?;
    set_attr(Path::new("/"), READ_ONLY)
}

/// The workspace's changes go to the task's upper directory: what shows the
/// workspace now becomes read-only (nothing can write the real directory
/// even from under the overlay), the task's layer directory is attached for
/// a moment where only init can see it, and the overlay is mounted on top of
/// the workspace from it. The layers stay reachable only through the overlay.
fn overlay(path: &Path, layers: &OwnedFd) -> Result<(), StepError> {
    if fs::symlink_metadata(path).map(|m| !m.is_dir()).unwrap_or(true) {
        return Err(step("overlay workspace", path)(std::io::Error::other("the workspace is not a directory here")));
    }
    // Only a mount of its own can be made read-only without touching a parent bind.
    bind_read_only(path, path)?;
    let staging = Path::new(LAYERS);
    mkdir(staging, nix::sys::stat::Mode::from_bits_truncate(0o700)).map_err(nix_step("mkdir", staging))?;
    sys::move_mount_fd(layers.as_raw_fd(), staging).map_err(step("attach overlay layers", staging))?;
    let mnt = sys::overlay_detached(path, &staging.join("upper"), &staging.join("work"))
        .map_err(step("mount overlay", path))?;
    umount2(staging, MntFlags::MNT_DETACH).map_err(nix_step("detach overlay layers", staging))?;
    fs::remove_dir(staging).map_err(step("rmdir", staging))?;
    sys::move_mount_fd(mnt.as_raw_fd(), path).map_err(step("attach overlay", path))
}

fn old(path: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

fn bind(src: &Path, dst: &Path) -> Result<(), StepError> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(nix_step("bind", dst))
}

fn bind_read_only(src: &Path, dst: &Path) -> Result<(), StepError> {
    bind(src, dst)?;
    set_attr(dst, READ_ONLY)
}

fn rbind(src: &Path, dst: &Path) -> Result<(), StepError> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(nix_step("bind", dst))
}

/// Where the whiteout layer of [`hide`] is built (removed right after).
const HIDE_LAYER: &str = "/.clawcage-whiteouts";

/// Make `names` under the read-only bind at `path` absent: a small tmpfs
/// holds a whiteout (the 0/0 character device overlayfs reads as "deleted")
/// for each, and a read-only overlay of that layer over the bind replaces
/// the bind. The overlay keeps private copies of its layers, so the tmpfs
/// is detached again at once.
fn hide(path: &Path, names: &[PathBuf]) -> Result<(), StepError> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let layer = Path::new(HIDE_LAYER);
    ensure_dir(layer)?;
    tmpfs(layer, 1 << 20, 0o755, MsFlags::empty())?;
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o755);
    for name in names {
        let mut dir = layer.to_path_buf();
        let mut host = path.to_path_buf();
        let parents: Vec<_> = name.parent().map(|p| p.components().collect()).unwrap_or_default();
        for c in parents {
            dir.push(c);
            host.push(c);
            if fs::symlink_metadata(&dir).is_err() {
                fs::create_dir(&dir).map_err(step("mkdir", &dir))?;
                // The merged directory shows the top layer's mode: keep the bind's.
                fs::set_permissions(&dir, fs::Permissions::from_mode(mode(&host))).map_err(step("chmod", &dir))?;
            }
        }
        let whiteout = layer.join(name);
        mknod(&whiteout, SFlag::S_IFCHR, Mode::from_bits_truncate(0o000), 0)
            .map_err(nix_step("mknod whiteout", &whiteout))?;
    }
    fs::set_permissions(layer, fs::Permissions::from_mode(mode(path))).map_err(step("chmod", layer))?;
    let lower = format!("lowerdir={}:{}", overlay_escape(layer), overlay_escape(path));
    mount(
        Some("overlay"),
        path,
        Some("overlay"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(lower.as_str()),
    )
    .map_err(nix_step("mount overlay to hide deny paths", path))?;
    umount2(layer, MntFlags::MNT_DETACH).map_err(nix_step("detach whiteout layer", layer))?;
    fs::remove_dir(layer).map_err(step("rmdir", layer))
}

/// A path as an overlayfs `lowerdir` entry: `\`, `:` and `,` escaped.
fn overlay_escape(p: &Path) -> String {
    let mut out = String::new();
    for ch in p.to_string_lossy().chars() {
        if matches!(ch, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn set_attr(path: &Path, attrs: u64) -> Result<(), StepError> {
    sys::mount_setattr(libc::AT_FDCWD, path, attrs, None).map_err(step("mount_setattr", path))
}

fn tmpfs(path: &Path, size: u64, mode: u32, extra: MsFlags) -> Result<(), StepError> {
    let data = format!("size={size},mode={mode:o}");
    mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra, Some(data.as_str()))
        .map_err(nix_step("mount tmpfs", path))
}

fn mask_dir(path: &Path) -> Result<(), StepError> {
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=0,mode=0755,nr_inodes=1"),
    )
    .map_err(nix_step("mask directory", path))
}

fn mask_file(path: &Path) -> Result<(), StepError> {
    bind_read_only(Path::new(EMPTY_FILE), path)
}

fn ensure_dir(path: &Path) -> Result<(), StepError> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        _ => fs::create_dir_all(path).map_err(step("mkdir", path)),
    }
}

fn ensure_mountpoint(path: &Path, dir: bool) -> Result<(), StepError> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    if dir {
        return ensure_dir(path);
    }
    ensure_dir(path.parent().unwrap_or(Path::new("/")))?;
    fs::File::create(path).map(drop).map_err(step("create mount point", path))
}

fn proc() -> Result<(), StepError> {
    ensure_dir(Path::new("/proc"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(nix_step("mount proc", "/proc"))?;
    for f in PROC_MASKED_FILES {
        let p = Path::new("/proc").join(f);
        if p.exists() {
            mask_file(&p)?;
        }
    }
    for d in PROC_MASKED_DIRS {
        let p = Path::new("/proc").join(d);
        if p.is_dir() {
            mask_dir(&p)?;
        }
    }
    for d in PROC_READ_ONLY {
        let p = Path::new("/proc").join(d);
        if p.exists() {
            bind_read_only(&p, &p)?;
        }
    }
    Ok(())
}

fn dev(tty: bool, shm_size: u64) -> Result<(), StepError> {
    let dev = Path::new("/dev");
    ensure_dir(dev)?;
    tmpfs(dev, 64 * 1024, 0o755, MsFlags::MS_NOEXEC)?;
    for name in DEVICES {
        let p = dev.join(name);
        fs::File::create(&p).map_err(step("create device mount point", &p))?;
        bind(&old(&p), &p)?;
        set_attr(&p, sys::MOUNT_ATTR_NOSUID)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let p = dev.join(link);
        symlink(target, &p).map_err(step("symlink", &p))?;
    }
    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    tmpfs(&shm, shm_size, 0o1777, MsFlags::empty())?;
    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    if tty {
        mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
        .map_err(nix_step("mount devpts", &pts))?;
    }
    set_attr(dev, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID)
}
