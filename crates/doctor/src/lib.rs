//! `clawcage doctor`: what this kernel supports, probed for real (forked children try each
//! feature; nothing is guessed from version numbers), and which mechanism each protection
//! layer will use.
//!
//! Forking is fine here: `doctor` is single-threaded. The children run only raw syscalls and
//! leave with `_exit`, so even a multi-threaded caller (a test harness) is safe.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getgid, getuid, ForkResult};

use clawcage_sandbox::cgroup::{self, Mechanism};

/// `landlock_create_ruleset` flag: return the highest supported ABI version.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
/// `_IO(KVMIO, 0x00)`.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
/// The only KVM API version there has ever been.
const KVM_API_VERSION: libc::c_int = 12;
/// The namespaces the ns backend unshares, with their names.
const NAMESPACES: [(libc::c_int, &str); 6] = [
    (libc::CLONE_NEWNS, "mount"),
    (libc::CLONE_NEWPID, "pid"),
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
];

/// Everything `clawcage doctor` prints.
#[derive(Debug, Clone)]
pub struct Report {
    /// Kernel features, each probed.
    pub features: Vec<Feature>,
    /// The mechanism chosen for each protection layer.
    pub layers: Vec<LayerChoice>,
    /// Whether the built-in default policy can be enforced in full: user and all other
    /// namespaces, a seccomp filter and Landlock (ABI ≥ 1).
    pub default_enforceable: bool,
}

/// One probed kernel feature.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Short name ("user namespaces", "landlock", ...).
    pub name: &'static str,
    /// Whether the probe succeeded.
    pub available: bool,
    /// What was found (versions, sysctls, the failing step or errno); may span lines.
    pub detail: String,
}

/// The mechanism that enforces one protection layer.
#[derive(Debug, Clone)]
pub struct LayerChoice {
    /// The layer: namespaces, filesystem, syscalls, limits, network.
    pub layer: &'static str,
    /// How it is enforced here.
    pub mechanism: String,
    /// Whether it is enforced as designed (false: missing or a weaker fallback).
    pub ok: bool,
}

/// Probes this machine.
pub fn report() -> Report {
    let userns = in_child(|| unshare(libc::CLONE_NEWUSER));
    let all = NAMESPACES.iter().fold(libc::CLONE_NEWUSER, |acc, (f, _)| acc | f);
    let namespaces = in_child(|| unshare(all));
    let landlock = landlock_abi();
    let seccomp = in_child(install_allow_filter);
    let notify = seccomp_action_available(libc::SECCOMP_RET_USER_NOTIF);
    let cgroups = cgroup::detect();
    let (mech, cgroup_lines) = (cgroups.mechanism(), cgroups.describe().join("\n"));
    let kvm = kvm_api_version();
    let kvm_ok = kvm == Ok(KVM_API_VERSION);
    let qemu = on_path("qemu-system-x86_64");
    let kernel = read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (ns_ok, seccomp_ok) = (userns.is_ok() && namespaces.is_ok(), seccomp.is_ok());
    let landlock_ok = landlock.is_ok_and(|abi| abi >= 1);

    let mut features = Vec::new();
    let mut add = |name, available, detail: String| {
        features.push(Feature { name, available, detail });
    };
    add("kernel", true, kernel);
    add("user namespaces", userns.is_ok(), userns_detail(&userns));
    add("mount/pid/net/ipc/uts/cgroup ns", ns_ok, namespaces_detail(&namespaces));
    add("landlock", landlock_ok, landlock_detail(landlock));
    add("seccomp filter", seccomp_ok, errno_detail(&seccomp, "allow-all filter installed"));
    add("seccomp user notification", notify, "SECCOMP_GET_ACTION_AVAIL".into());
    add("cgroups", mech != Mechanism::Rlimit, cgroup_lines);
    let (overlay_ok, overlay_detail) = overlay_in_userns();
    add("overlayfs in a user namespace", overlay_ok, overlay_detail);
    add("pidfd_open", pidfd_open_works(), "pidfd_open(getpid())".into());
    add("/dev/kvm", kvm_ok, kvm.map_or_else(|e| e, |v| format!("KVM API version {v}")));
    add("qemu-system-x86_64", qemu.is_some(), qemu.unwrap_or("not on PATH".into()));

    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut layers = Vec::new();
    let mut add = |layer, mechanism: String, ok| {
        layers.push(LayerChoice { layer, mechanism, ok });
    };
    let microvm = kvm_ok && features.last().is_some_and(|f| f.available);
    add(
        "namespaces",
        match ns_ok {
            true => "ns backend: user, mount, pid, net, ipc, uts, cgroup namespaces".into(),
            false => format!("none (microvm needs /dev/kvm + qemu: {})", yes_no(microvm)),
        },
        ns_ok,
    );
    let filesystem = match landlock {
        Ok(abi) => format!("mount namespace + Landlock ABI {abi}"),
        Err(_) => "mount namespace only (no Landlock)".into(),
    };
    add("filesystem", filesystem, ns_ok && landlock_ok);
    let syscalls = format!("seccomp filter (user notification: {})", yes_no(notify));
    add("syscalls", syscalls, seccomp_ok);
    let limits = match mech {
        Mechanism::Rlimit => "rlimits only: address space, processes per user; no CPU rate".into(),
        m => format!("{m} (+ rlimits for file size and core dumps)"),
    };
    add("limits", limits, mech != Mechanism::Rlimit);
    add("network", "network namespace, loopback only".into(), ns_ok);
    let default_enforceable = ns_ok && seccomp_ok && landlock_ok;
    Report { features, layers, default_enforceable }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "{:<32} {:<4} DETAIL", "FEATURE", "OK")?;
        for feat in &self.features {
            let mut lines = feat.detail.lines();
            let first = lines.next().unwrap_or("");
            writeln!(f, "{:<32} {:<4} {first}", feat.name, yes_no(feat.available))?;
            for line in lines {
                writeln!(f, "{:<37} {line}", "")?;
            }
        }
        writeln!(f, "\n{:<32} {:<4} MECHANISM", "LAYER", "OK")?;
        for l in &self.layers {
            writeln!(f, "{:<32} {:<4} {}", l.layer, yes_no(l.ok), l.mechanism)?;
        }
        let enforceable = yes_no(self.default_enforceable);
        write!(f, "\ndefault policy enforceable: {enforceable}")
    }
}

/// The highest Landlock ABI the kernel supports (ENOSYS: not built in; EOPNOTSUPP: disabled
/// at boot).
pub fn landlock_abi() -> Result<u32, Errno> {
    // SAFETY: a null attribute pointer with size 0 and the VERSION flag only queries the ABI
    // version; the kernel reads no memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    u32::try_from(ret).map_err(|_| Errno::EINVAL)
}

/// Runs `body` in a forked child; `Ok` if it returned 0, else `Err` with the errno it
/// returned (or the fork/wait failure, or EINTR if it died of a signal).
///
/// `body` must only make raw syscalls on data prepared before the fork: no allocation, no
/// locks, since the caller may have other threads.
fn in_child(body: impl FnOnce() -> i32) -> Result<(), Errno> {
    // SAFETY: the child runs only `body` (raw syscalls, see above) and then `_exit`s, never
    // returning into code that could need state owned by other threads.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = body();
            // SAFETY: `_exit` ends the child at once, without running Rust or libc cleanup.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, code) => Err(Errno::from_raw(code)),
            _ => Err(Errno::EINTR),
        },
    }
}

/// The errno of the last failed call, as a child exit code.
fn last_errno() -> i32 {
    Errno::last_raw()
}

/// Child body: `unshare(flags)`; 0 or the errno.
fn unshare(flags: libc::c_int) -> i32 {
    // SAFETY: unshare takes only flags; in a single-threaded child it affects only the child.
    if unsafe { libc::unshare(flags) } == 0 {
        0
    } else {
        last_errno()
    }
}

/// Child body: set no_new_privs and install a one-instruction "allow" seccomp filter.
fn install_allow_filter() -> i32 {
    let mut allow = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW }];
    let prog = libc::sock_fprog { len: 1, filter: allow.as_mut_ptr() };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return last_errno();
    }
    // SAFETY: `prog` points at `allow` (BPF_RET|BPF_K, 1 instruction); both live on this
    // stack frame for the duration of the call, and the kernel copies the program.
    let ret =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog) };
    if ret == 0 {
        0
    } else {
        last_errno()
    }
}

/// Whether the kernel knows the seccomp return `action` (SECCOMP_GET_ACTION_AVAIL).
fn seccomp_action_available(action: libc::c_uint) -> bool {
    // SAFETY: the kernel reads one u32 from `&action`, which lives for the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_ACTION_AVAIL, 0, &action as *const libc::c_uint) };
    ret == 0
}

/// Overlayfs inside a user namespace: the child maps itself to root in a new user and mount
/// namespace, mounts a tmpfs on /tmp (private to the child) and an overlay in it.
fn overlay_in_userns() -> (bool, String) {
    let c = |s: &str| CString::new(s).unwrap_or_default();
    let (uid_map, gid_map) = (format!("0 {} 1", getuid()), format!("0 {} 1", getgid()));
    let (setgroups, uid_file, gid_file) = (c("/proc/self/setgroups"), c("/proc/self/uid_map"), c("/proc/self/gid_map"));
    let dirs = ["/tmp/l", "/tmp/u", "/tmp/w", "/tmp/m"].map(c);
    let (root, tmp, tmpfs, overlay) = (c("/"), c("/tmp"), c("tmpfs"), c("overlay"));
    let opts = c("lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w");
    let private = libc::MS_REC | libc::MS_PRIVATE;
    // Built before the fork; the child only calls them (raw syscalls on the data above).
    let steps: [(&str, &dyn Fn() -> bool); 8] = [
        ("unshare(USER|NS)", &|| unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0),
        ("write setgroups", &|| write_file(&setgroups, b"deny")),
        ("write uid_map", &|| write_file(&uid_file, uid_map.as_bytes())),
        ("write gid_map", &|| write_file(&gid_file, gid_map.as_bytes())),
        ("make / private", &|| mount(None, &root, None, private, None)),
        ("mount tmpfs on /tmp", &|| mount(Some(&tmpfs), &tmp, Some(&tmpfs), 0, None)),
        ("mkdir lower/upper/work/merged", &|| dirs.iter().all(mkdir)),
        ("mount overlay", &|| mount(Some(&overlay), &dirs[3], Some(&overlay), 0, Some(&opts))),
    ];
    // Exit code: 0, or 100 + the index of the failed step.
    let result = in_child(|| {
        let failed = steps.iter().position(|(_, step)| !step());
        failed.map_or(0, |i| 100 + i as i32)
    });
    let detail = match result {
        Ok(()) => "mounted an overlay in a new user + mount namespace".to_string(),
        Err(e) => match steps.get((e as usize).wrapping_sub(100)) {
            Some((step, _)) => format!("failed at: {step}"),
            None => format!("probe failed: {e}"),
        },
    };
    (result.is_ok(), detail)
}

/// Child helper: mount(2) with raw pointers; `None` for a null source, type or data.
fn mount(src: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: libc::c_ulong, data: Option<&CStr>) -> bool {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    unsafe { libc::mount(ptr(src), target.as_ptr(), ptr(fstype), flags, ptr(data).cast()) == 0 }
}

/// Child helper: mkdir(2).
fn mkdir(path: &CString) -> bool {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    unsafe { libc::mkdir(path.as_ptr(), 0o755) == 0 }
}

/// Child helper: write `data` to the file at `path` with raw syscalls.
fn write_file(path: &CString, data: &[u8]) -> bool {
    // SAFETY: `path` is NUL-terminated; the returned fd is checked and closed.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    // SAFETY: `data` is a valid buffer of `data.len()` bytes; `fd` is open.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    usize::try_from(n).is_ok_and(|n| n == data.len())
}

/// pidfd_open(2) on ourselves.
fn pidfd_open_works() -> bool {
    // SAFETY: pidfd_open takes a pid and flags; a returned fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` was just returned to us and is closed once.
    unsafe { libc::close(fd as libc::c_int) };
    true
}

/// Opens /dev/kvm and asks for the KVM API version.
fn kvm_api_version() -> Result<libc::c_int, String> {
    let kvm = fs::OpenOptions::new().read(true).write(true).open("/dev/kvm");
    let kvm = kvm.map_err(|e| format!("cannot open: {e}"))?;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int; the fd is open.
    let version = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    if version < 0 {
        return Err(format!("KVM_GET_API_VERSION: {}", Errno::last()));
    }
    Ok(version)
}

/// The full path of an executable `name` on PATH.
fn on_path(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find_map(|p| {
        let executable = fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        executable.then(|| p.display().to_string())
    })
}

fn userns_detail(result: &Result<(), Errno>) -> String {
    let mut parts = vec![errno_detail(result, "unshare(CLONE_NEWUSER) works")];
    for knob in [
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "/proc/sys/kernel/unprivileged_userns_clone",
    ] {
        if let Some(value) = read_trimmed(knob) {
            let name = knob.rsplit('/').next().unwrap_or(knob);
            parts.push(format!("{name}={value}"));
        }
    }
    parts.join("; ")
}

/// On failure, which namespaces fail on their own (each with a user namespace).
fn namespaces_detail(result: &Result<(), Errno>) -> String {
    if result.is_ok() {
        return "unshare of all together works".into();
    }
    let failing: Vec<String> = NAMESPACES
        .iter()
        .filter_map(|(flag, name)| {
            let r = in_child(|| unshare(libc::CLONE_NEWUSER | flag));
            r.err().map(|e| format!("{name} ({e})"))
        })
        .collect();
    format!("failing: {}", failing.join(", "))
}

fn landlock_detail(abi: Result<u32, Errno>) -> String {
    match abi {
        Ok(abi) => format!("ABI {abi}"),
        Err(Errno::ENOSYS) => "not in this kernel (ENOSYS)".into(),
        Err(Errno::EOPNOTSUPP) => "disabled at boot: add landlock to the lsm= list".into(),
        Err(e) => format!("unavailable: {e}"),
    }
}

fn errno_detail(result: &Result<(), Errno>, ok: &str) -> String {
    match result {
        Ok(()) => ok.to_string(),
        Err(e) => format!("failed: {e}"),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_finds_landlock_and_namespaces() {
        let r = report();
        println!("{r}");
        assert!(landlock_abi().unwrap() >= 1);
        let available = |name: &str| r.features.iter().any(|f| f.name == name && f.available);
        assert!(available("landlock"), "{r}");
        assert!(available("user namespaces"), "{r}");
        assert!(available("mount/pid/net/ipc/uts/cgroup ns"), "{r}");
        assert!(available("seccomp filter"), "{r}");
        assert!(r.layers.iter().any(|l| l.layer == "filesystem" && l.ok && l.mechanism.contains("Landlock ABI")));
        assert!(r.default_enforceable, "{r}");
    }

    #[test]
    fn child_reports_errno() {
        assert_eq!(in_child(|| 0), Ok(()));
        assert_eq!(in_child(|| libc::EPERM), Err(Errno::EPERM));
        // Not a namespace flag at all.
        assert_eq!(in_child(|| unshare(libc::CLONE_VFORK)), Err(Errno::EINVAL));
    }
}
