//! The reviewed seccomp table: every syscall the sandbox refuses, with why.
//!
//! This file is data. The compiler in `seccomp.rs` turns it into BPF; nothing
//! here is executed except the name → number lookup at the bottom.
//!
//! Rules of the table:
//! - Anything not listed is allowed (default ALLOW).
//! - Argument conditions compare the LOW 32 BITS of the argument only, which is
//!   what the kernel uses for `int`/`unsigned int` arguments (fd, cmd, domain);
//!   comparing all 64 bits would let a caller set a high bit to slip past the
//!   rule while the kernel still sees the forbidden value (CVE-2017-5226).
//! - Argument-checked entries come first: they are the only rules that run at
//!   run time for allowed calls (every unlisted syscall is answered from the
//!   kernel's per-syscall ALLOW cache without running the filter), so the most
//!   frequent one, `ioctl`, leads.

use super::{Action, Cond, Entry, Named, SeccompError};

const EPERM: Action = Action::Errno(libc::EPERM);
const ENOSYS: Action = Action::Errno(libc::ENOSYS);
use Cond::{Always, ArgAnyBit, ArgIn, ArgNotIn, ForeignArch, X32};

/// `Named { value: libc::X as u32, name: "X" }`.
macro_rules! n {
    ($c:ident) => {
        Named { value: libc::$c as u32, name: stringify!($c) }
    };
    ($v:literal, $name:literal) => {
        Named { value: $v, name: $name }
    };
}

/// Namespace-creating flags shared by `clone` and `unshare`.
const NS_FLAGS: &[Named] = &[
    n!(CLONE_NEWNS),
    n!(CLONE_NEWUTS),
    n!(CLONE_NEWIPC),
    n!(CLONE_NEWUSER),
    n!(CLONE_NEWPID),
    n!(CLONE_NEWNET),
    n!(CLONE_NEWCGROUP),
];
/// `unshare` also takes CLONE_NEWTIME (0x80); in `clone` that byte is the exit
/// signal (CSIGNAL), so it is not a flag there and is not tested.
const UNSHARE_NS_FLAGS: &[Named] = &[
    n!(CLONE_NEWNS),
    n!(CLONE_NEWUTS),
    n!(CLONE_NEWIPC),
    n!(CLONE_NEWUSER),
    n!(CLONE_NEWPID),
    n!(CLONE_NEWNET),
    n!(CLONE_NEWCGROUP),
    n!(CLONE_NEWTIME),
];
const SOCKET_FAMILIES: &[Named] = &[n!(AF_UNIX), n!(AF_INET), n!(AF_INET6)];
/// The personas Docker's default profile allows too.
const PERSONAS: &[Named] = &[
    n!(0x0000_0000, "PER_LINUX"),
    n!(0x0000_0008, "PER_LINUX32"),
    n!(0x0002_0000, "UNAME26"),
    n!(0x0002_0008, "PER_LINUX32|UNAME26"),
    n!(0xffff_ffff, "query"),
];
/// Mode bits that make an executable run as its owner or group.
const SET_ID_BITS: &[Named] = &[n!(S_ISUID), n!(S_ISGID)];
const SET_ID_REASON: &str = "a set-id mode on a file in a writable path would survive on the host: a setuid binary owned by the sandbox's host identity (host root on an idmapped workspace) that any host user could run";
const MOUNT_REASON: &str =
    "changes the mount table: could uncover or make writable what the mount plan hid or made read-only";

const fn e(syscall: &'static str, when: Cond, action: Action, reason: &'static str) -> Entry {
    Entry { syscall, when, action, reason }
}

/// The table. See the module comment for its rules.
#[rustfmt::skip]
pub(super) const TABLE: &[Entry] = &[
    // ABI: checked before any syscall number is looked at.
    e("*", ForeignArch, EPERM, "i386 (int 0x80) and other compat ABIs number syscalls differently, so no rule below would apply; every such call fails with EPERM, as the sandbox contract says, and a 64-bit caller carries on"),
    e("*", X32, EPERM, "x32 numbers (bit 0x40000000) reach the same kernel code under other numbers and would bypass every rule below; nothing legitimate uses x32"),
    // Argument-checked (run at run time for allowed calls; most frequent first).
    e("ioctl", ArgIn { arg: 1, values: &[n!(TIOCSTI), n!(TIOCLINUX)] }, EPERM, "pushes keystrokes into the terminal's input: commands run in the user's shell after the sandbox exits (CVE-2017-5226)"),
    e("ioctl", ArgIn { arg: 1, values: &[n!(TIOCSETD)] }, EPERM, "attaches tty line disciplines (n_gsm, n_hdlc), a recurring source of kernel privilege escalations"),
    e("openat", ArgAnyBit { arg: 3, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("open", ArgAnyBit { arg: 2, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("creat", ArgAnyBit { arg: 1, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("chmod", ArgAnyBit { arg: 1, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("fchmod", ArgAnyBit { arg: 1, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("fchmodat", ArgAnyBit { arg: 2, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("fchmodat2", ArgAnyBit { arg: 2, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("mknod", ArgAnyBit { arg: 1, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("mknodat", ArgAnyBit { arg: 2, bits: SET_ID_BITS }, EPERM, SET_ID_REASON),
    e("clone", ArgAnyBit { arg: 0, bits: NS_FLAGS }, EPERM, "new namespaces (a user ns above all) open CAP_SYS_ADMIN-only kernel code to the sandbox; plain fork/thread clones set none of these bits"),
    e("unshare", ArgAnyBit { arg: 0, bits: UNSHARE_NS_FLAGS }, EPERM, "same as clone: the sandbox's namespaces are made before the filter, none after"),
    e("socket", ArgNotIn { arg: 0, values: SOCKET_FAMILIES }, EPERM, "netlink, packet, vsock, bluetooth, AF_ALG, ... reach kernel subsystems (routing, raw frames, host sockets, crypto) a build never needs"),
    e("socketpair", ArgNotIn { arg: 0, values: SOCKET_FAMILIES }, EPERM, "same families rule as socket()"),
    e("personality", ArgNotIn { arg: 0, values: PERSONAS }, EPERM, "other personas turn off ASLR (ADDR_NO_RANDOMIZE), map page 0 (MMAP_PAGE_ZERO) or make data executable (READ_IMPLIES_EXEC)"),
    // Namespaces.
    e("clone3", Always, ENOSYS, "its flags live in a struct seccomp cannot read; ENOSYS makes glibc fall back to clone(), whose flags are checked above"),
    e("openat2", Always, ENOSYS, "its mode lives in a struct seccomp cannot read (see the set-id rules above); ENOSYS makes callers fall back to openat()"),
    e("setns", Always, EPERM, "joining another namespace would leave the sandbox's mount, pid or network view"),
    // Other processes.
    e("ptrace", Always, EPERM, "reads and writes other processes' memory and registers; also a known way around seccomp on old kernels"),
    e("process_vm_readv", Always, EPERM, "ptrace-grade read of another process's memory"),
    e("process_vm_writev", Always, EPERM, "ptrace-grade write to another process's memory"),
    e("pidfd_getfd", Always, EPERM, "copies a file descriptor out of another process"),
    // Kernel attack surface nothing in a build needs.
    e("keyctl", Always, EPERM, "kernel keyrings are not namespaced: reads or plants keys of the same uid, and a frequent CVE source"),
    e("add_key", Always, EPERM, "kernel keyrings (see keyctl)"),
    e("request_key", Always, EPERM, "kernel keyrings (see keyctl); can also run the host's key upcall helper"),
    e("bpf", Always, EPERM, "the eBPF verifier and JIT are a large attack surface"),
    e("perf_event_open", Always, EPERM, "perf is a large attack surface and leaks kernel addresses and side channels"),
    e("userfaultfd", Always, EPERM, "stalls the kernel on a page fault, the standard way to win kernel races in exploits"),
    e("io_uring_setup", Always, EPERM, "io_uring does I/O outside seccomp's view and has a long privilege-escalation record"),
    e("io_uring_enter", Always, EPERM, "io_uring (see io_uring_setup)"),
    e("io_uring_register", Always, EPERM, "io_uring (see io_uring_setup)"),
    // Mounts and the root directory.
    e("mount", Always, EPERM, MOUNT_REASON),
    e("umount2", Always, EPERM, MOUNT_REASON),
    e("fsopen", Always, EPERM, MOUNT_REASON),
    e("fsconfig", Always, EPERM, MOUNT_REASON),
    e("fsmount", Always, EPERM, MOUNT_REASON),
    e("fspick", Always, EPERM, MOUNT_REASON),
    e("move_mount", Always, EPERM, MOUNT_REASON),
    e("open_tree", Always, EPERM, MOUNT_REASON),
    e("open_tree_attr", Always, EPERM, MOUNT_REASON),
    e("mount_setattr", Always, EPERM, MOUNT_REASON),
    e("pivot_root", Always, EPERM, "changes the root mount"),
    e("chroot", Always, EPERM, "changes the root directory, the first step of the classic chroot escape"),
    // Kernel code.
    e("kexec_load", Always, EPERM, "replaces the running kernel"),
    e("kexec_file_load", Always, EPERM, "replaces the running kernel"),
    e("init_module", Always, EPERM, "loads kernel code"),
    e("finit_module", Always, EPERM, "loads kernel code"),
    e("delete_module", Always, EPERM, "unloads kernel code"),
    // Files by handle.
    e("open_by_handle_at", Always, EPERM, "opens files by handle, past every path-based confinement (the 'shocker' container escape)"),
    e("name_to_handle_at", Always, EPERM, "makes the handles open_by_handle_at takes; leaks inode identities"),
    // Host administration.
    e("syslog", Always, EPERM, "reads the kernel log (kernel addresses, other users' messages) or sets the console level"),
    e("acct", Always, EPERM, "switches host process accounting or points it at a file"),
    e("swapon", Always, EPERM, "host memory management"),
    e("swapoff", Always, EPERM, "host memory management"),
    e("reboot", Always, EPERM, "restarts or halts the machine, or changes Ctrl-Alt-Del"),
    e("settimeofday", Always, EPERM, "sets the host clock"),
    e("clock_settime", Always, EPERM, "sets the host clock"),
    e("adjtimex", Always, EPERM, "adjusts the host clock; its query use (ntp_gettime) is rare in builds and the code leaked memory before (CVE-2018-11508)"),
    e("clock_adjtime", Always, EPERM, "adjusts the host clock (see adjtimex)"),
    e("quotactl", Always, EPERM, "manages filesystem quotas"),
    e("quotactl_fd", Always, EPERM, "manages filesystem quotas"),
    e("lookup_dcookie", Always, EPERM, "obsolete oprofile helper that turns cookies into paths outside the view"),
    e("uselib", Always, EPERM, "obsolete a.out library loader with a history of bugs"),
    e("vhangup", Always, EPERM, "hangs up the terminal, hitting every process on it"),
    e("nfsservctl", Always, EPERM, "removed NFS server control; blocked so it can never come back"),
    e("iopl", Always, EPERM, "raw hardware I/O-port access"),
    e("ioperm", Always, EPERM, "raw hardware I/O-port access"),
    e("fanotify_init", Always, EPERM, "filesystem-wide monitoring whose permission events can stall other processes' file access"),
];

/// The syscall number of `name` on the running architecture: `Ok(None)` when the
/// architecture has no such call (its entry is then skipped), an error when the
/// name is unknown (a typo in the table must not silently drop a rule).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn number(name: &str) -> Result<Option<u32>, SeccompError> {
    use libc::*;
    let nr: c_long = match name {
        "acct" => SYS_acct,
        "add_key" => SYS_add_key,
        "adjtimex" => SYS_adjtimex,
        "bpf" => SYS_bpf,
        "chroot" => SYS_chroot,
        "clock_adjtime" => SYS_clock_adjtime,
        "clock_settime" => SYS_clock_settime,
        "clone" => SYS_clone,
        "clone3" => SYS_clone3,
        "delete_module" => SYS_delete_module,
        "fanotify_init" => SYS_fanotify_init,
        "fchmod" => SYS_fchmod,
        "fchmodat" => SYS_fchmodat,
        "fchmodat2" => SYS_fchmodat2,
        "mknodat" => SYS_mknodat,
        "openat" => SYS_openat,
        "openat2" => SYS_openat2,
        "finit_module" => SYS_finit_module,
        "fsconfig" => SYS_fsconfig,
        "fsmount" => SYS_fsmount,
        "fsopen" => SYS_fsopen,
        "fspick" => SYS_fspick,
        "init_module" => SYS_init_module,
        "io_uring_enter" => SYS_io_uring_enter,
        "io_uring_register" => SYS_io_uring_register,
        "io_uring_setup" => SYS_io_uring_setup,
        "ioctl" => SYS_ioctl,
        "kexec_file_load" => SYS_kexec_file_load,
        "kexec_load" => SYS_kexec_load,
        "keyctl" => SYS_keyctl,
        "lookup_dcookie" => SYS_lookup_dcookie,
        "mount" => SYS_mount,
        "mount_setattr" => SYS_mount_setattr,
        "move_mount" => SYS_move_mount,
        "name_to_handle_at" => SYS_name_to_handle_at,
        "nfsservctl" => SYS_nfsservctl,
        "open_by_handle_at" => SYS_open_by_handle_at,
        "open_tree" => SYS_open_tree,
        // Linux 6.15; not in libc 0.2.191. Every arch shares numbers from 424 on.
        "open_tree_attr" => 467,
        "perf_event_open" => SYS_perf_event_open,
        "personality" => SYS_personality,
        "pidfd_getfd" => SYS_pidfd_getfd,
        "pivot_root" => SYS_pivot_root,
        "process_vm_readv" => SYS_process_vm_readv,
        "process_vm_writev" => SYS_process_vm_writev,
        "ptrace" => SYS_ptrace,
        "quotactl" => SYS_quotactl,
        "quotactl_fd" => SYS_quotactl_fd,
        "reboot" => SYS_reboot,
        "request_key" => SYS_request_key,
        "setns" => SYS_setns,
        "settimeofday" => SYS_settimeofday,
        "socket" => SYS_socket,
        "socketpair" => SYS_socketpair,
        "swapoff" => SYS_swapoff,
        "swapon" => SYS_swapon,
        "syslog" => SYS_syslog,
        "umount2" => SYS_umount2,
        "unshare" => SYS_unshare,
        "userfaultfd" => SYS_userfaultfd,
        "vhangup" => SYS_vhangup,
        #[cfg(target_arch = "x86_64")]
        "ioperm" => SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        "iopl" => SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        "uselib" => SYS_uselib,
        #[cfg(target_arch = "x86_64")]
        "open" => SYS_open,
        #[cfg(target_arch = "x86_64")]
        "creat" => SYS_creat,
        #[cfg(target_arch = "x86_64")]
        "chmod" => SYS_chmod,
        #[cfg(target_arch = "x86_64")]
        "mknod" => SYS_mknod,
        #[cfg(not(target_arch = "x86_64"))]
        "ioperm" | "iopl" | "uselib" | "open" | "creat" | "chmod" | "mknod" => return Ok(None),
        _ => return Err(SeccompError::UnknownSyscall(name.to_owned())),
    };
    u32::try_from(nr).map(Some).map_err(|_| SeccompError::UnknownSyscall(name.to_owned()))
}

/// No syscall numbers on architectures the table was not written for.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn number(_name: &str) -> Result<Option<u32>, SeccompError> {
    Err(SeccompError::UnsupportedArch(std::env::consts::ARCH))
}
