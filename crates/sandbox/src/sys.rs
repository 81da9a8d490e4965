//! The few raw system calls that `nix` does not wrap. Every `unsafe` block of
//! the setup path lives here, each with the reason it is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Turn a `-1` return into the current `errno`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Result of [`clone_namespaces`] as seen by each side.
pub enum Forked {
    /// In the parent: the child's pid (in the parent's pid namespace).
    Parent(libc::pid_t),
    /// In the child (pid 1 of the new pid namespace).
    Child,
}

/// `clone(2)` with fork semantics (no new stack) and the given namespace flags.
///
/// The caller must be single-threaded: the child continues on a copy of the
/// caller's only thread, and allocates.
pub fn clone_namespaces(flags: libc::c_int) -> io::Result<Forked> {
    // SAFETY: raw clone without CLONE_VM and with a null stack behaves like
    // fork(): the child gets a private copy of the address space and resumes
    // here with return value 0. All pointer arguments are null, as fork uses.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3's flag: the child starts life in the cgroup2 group `cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`clone_namespaces`], but the child is born in the cgroup2 group
/// whose directory is `cgroup` (`clone3` with `CLONE_INTO_CGROUP`), so no
/// one has to move it there. `ENOSYS` (kernels before 5.7): use
/// [`clone_namespaces`] and move the child afterwards.
///
/// The caller must be single-threaded, as for [`clone_namespaces`].
pub fn clone_into_cgroup(flags: libc::c_int, cgroup: RawFd) -> io::Result<Forked> {
    let args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // clone3 without CLONE_VM and with no stack behaves like fork(): the
    // child gets a private copy of the address space and resumes here with
    // return value 0.
    // SAFETY: fork-like, as above; `args` is a properly laid out struct
    // clone_args that outlives the call, and the size passed is its size.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// `mount_setattr(2)` attribute bits we use.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Ignore set-user-ID and file capabilities.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// No device access.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// Mount is idmapped with `userns_fd`.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Set attributes on the mount at `path` (or on `dirfd` itself when `path` is empty).
pub fn mount_setattr(dirfd: RawFd, path: &Path, set: u64, userns_fd: Option<RawFd>) -> io::Result<()> {
    let c = cstr(path)?;
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: userns_fd.map_or(0, |fd| fd as u64) };
    let flags = if path.as_os_str().is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    // SAFETY: `c` is a valid NUL-terminated string and `attr` a properly laid
    // out `struct mount_attr` that outlives the call; the size passed matches.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            c.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// `open_tree(path, OPEN_TREE_CLONE)`: a detached copy of the mount at `path`.
pub fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string; the flags are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let fd = check(ret)? as RawFd;
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `move_mount(fd, "", AT_FDCWD, to, MOVE_MOUNT_F_EMPTY_PATH)`: attach a detached tree.
pub fn move_mount_fd(fd: RawFd, to: &Path) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let to = cstr(to)?;
    let empty = c"";
    // SAFETY: both strings are valid C strings living across the call.
    let ret = unsafe {
        libc::syscall(libc::SYS_move_mount, fd, empty.as_ptr(), libc::AT_FDCWD, to.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH)
    };
    check(ret).map(drop)
}

/// A detached overlayfs mount (`fsopen` / `fsconfig` / `fsmount`) of the
/// read-only layer `lower` with the writable `upper` and its `work`
/// directory, with `userxattr` (the unprivileged form: no redirect_dir, no
/// metacopy). `lowerdir+` needs Linux 6.8. The kernel's own message is added
/// to the error when it gives one.
pub fn overlay_detached(lower: &Path, upper: &Path, work: &Path) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let (lower, upper, work) = (cstr(lower)?, cstr(upper)?, cstr(work)?);
    // SAFETY: the name is a valid C string; the flags are plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    let fs = check(ret)? as RawFd;
    // SAFETY: fsopen returned a fresh descriptor that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs) };
    let fsfd = std::os::fd::AsRawFd::as_raw_fd(&fs);
    let config = |cmd: libc::c_uint, key: Option<&std::ffi::CStr>, value: Option<&std::ffi::CStr>| {
        let key = key.map_or(std::ptr::null(), |k| k.as_ptr());
        let value = value.map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: key and value are null or valid C strings living across
        // the call; `fsfd` is open for its duration.
        let ret = unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, cmd, key, value, 0) };
        check(ret).map(drop).map_err(|e| with_fs_message(fsfd, e))
    };
    config(FSCONFIG_SET_STRING, Some(c"lowerdir+"), Some(&lower))?;
    config(FSCONFIG_SET_STRING, Some(c"upperdir"), Some(&upper))?;
    config(FSCONFIG_SET_STRING, Some(c"workdir"), Some(&work))?;
    config(FSCONFIG_SET_FLAG, Some(c"userxattr"), None)?;
    config(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: plain integers; the attributes make the mount nosuid and nodev.
    let ret = unsafe { libc::syscall(libc::SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) };
    let mnt = check(ret).map_err(|e| with_fs_message(fsfd, e))? as RawFd;
    // SAFETY: fsmount returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt) })
}

/// `e` with the message the filesystem context logged, if any.
fn with_fs_message(fsfd: RawFd, e: io::Error) -> io::Error {
    let mut buf = [0u8; 512];
    // SAFETY: reads at most buf.len() bytes into our buffer; the fs context
    // descriptor is non-blocking for reads (ENODATA when nothing is logged).
    let n = unsafe { libc::read(fsfd, buf.as_mut_ptr().cast(), buf.len()) };
    match usize::try_from(n) {
        Ok(n) if n > 2 => {
            let msg = String::from_utf8_lossy(&buf[2..n]).trim().to_string();
            io::Error::new(e.kind(), format!("{e} ({msg})"))
        }
        _ => e,
    }
}

/// Close every descriptor above 2 except `keep`.
pub fn close_all_except(keep: RawFd) -> io::Result<()> {
    let keep = keep as libc::c_uint;
    let ranges = [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)];
    for (lo, hi) in ranges {
        if lo > hi || (keep < 3 && hi < 3) {
            continue;
        }
        // SAFETY: close_range takes plain integers. The caller is a fresh
        // process that owns every descriptor in the range and keeps none.
        let ret = unsafe { libc::syscall(libc::SYS_close_range, lo.max(3), hi, 0) };
        check(ret)?;
    }
    Ok(())
}

/// `prctl` with integer arguments.
pub fn prctl(option: libc::c_int, a2: libc::c_ulong, a3: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: every prctl option used by this crate takes integer arguments only.
    let ret = unsafe { libc::prctl(option, a2, a3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    check(ret as libc::c_long).map(|r| r as libc::c_int)
}

/// Drop all capabilities from the effective, permitted and inheritable sets.
pub fn capset_zero() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: header and the two-element data array match the v3 ABI of
    // capset(2) and outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    check(ret).map(drop)
}

/// Bring the loopback interface up in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFFLAGS reads the flags into the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Immediately end the process without running destructors or atexit hooks
/// (the right way out of a forked child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// Set the window size of a terminal.
pub fn set_winsize(fd: RawFd, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) } as libc::c_long).map(drop)
}

/// Get the window size of a terminal.
pub fn get_winsize(fd: RawFd) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain old data; all-zero is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into the winsize we own.
    check(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } as libc::c_long)?;
    Ok(ws)
}

/// Zero this process's original argv and environment strings, which the
/// kernel exposes as /proc/PID/cmdline and /proc/PID/environ, and write
/// `name` where argv was. Init is a fork of the supervisor: without this, the
/// host's command line and environment would be readable inside.
pub fn scrub_cmdline_and_environ(name: &[u8]) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<usize> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // Fields 48..=51 of proc(5) (arg_start, arg_end, env_start, env_end);
    // `fields[0]` is field 3.
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    for (start, end) in [(field(48), field(49)), (field(50), field(51))] {
        if start == 0 || end <= start {
            return Err(io::Error::other("no argv/environ bounds in /proc/self/stat"));
        }
        // Init never reads its arguments or environment after this point.
        // SAFETY: [start, end) is the region the kernel placed argv (or
        // envp) strings in at exec, at the top of our own stack mapping; it
        // is mapped and writable for the life of the process.
        unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
    let (start, end) = (field(48), field(49));
    let n = name.len().min(end - start - 1);
    // SAFETY: as above; `n` leaves the final byte of the region as NUL.
    unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), start as *mut u8, n) };
    Ok(())
}
