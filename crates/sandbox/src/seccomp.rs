//! Seccomp-BPF filter for sandboxed processes, compiled from a reviewed table.
//!
//! The policy is data: [`table()`] (in `seccomp/table.rs`) lists every refused
//! syscall, with its argument condition, action and a one-line reason. Anything
//! not listed is allowed. [`build`] compiles the table for the running
//! architecture into classic BPF; [`Filter::install`] loads it.
//!
//! The compiler is a small assembler here rather than `seccompiler`, because a
//! `seccompiler` filter has a single match action (this table needs EPERM,
//! ENOSYS for `clone3` and a kill for foreign ABIs), has no x32 check, and spends
//! four instructions on every bare syscall.
//!
//! Program layout (x86_64; aarch64 has no x32 part):
//!
//! ```text
//!   ld arch ; jeq NATIVE ? skip : ret <foreign-ABI action>
//!   ld nr   ; if nr >= 0x40000000 && nr != -1 { ret <x32 action> }
//!   binary search over the listed numbers:  jge mid ? right half : left half
//!   leaf (up to 4 numbers):  jeq nr ? (argument checks or jump to its ret) : next
//!       checks: (ld low 32 bits of arg ; compare ; ret <action>)* ; ret <fallback>
//!   leaf end: ret ALLOW
//!   ret <action 1> ; ret <action 2> ...   (shared by the plainly refused calls)
//! ```
//!
//! Only the arch and the number are loaded before an unlisted syscall reaches
//! `ret ALLOW`, so the kernel (5.11+) proves those calls always allowed when
//! the filter is attached and never runs the filter for them again; the filter
//! runs only for the listed calls.

use std::fmt;
use std::io;

mod table;

/// A named constant in an argument condition, kept for [`table()`]'s readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// The value compared against the low 32 bits of the argument.
    pub value: u32,
    /// Its symbolic name, e.g. `TIOCSTI`.
    pub name: &'static str,
}

/// When an [`Entry`] applies. Argument conditions look at the low 32 bits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Every call of the syscall.
    Always,
    /// A call through another ABI than the native one (i386 `int 0x80`, arm32).
    /// Applies to every syscall; the entry's `syscall` is `"*"`.
    ForeignArch,
    /// A syscall number with the x32 bit (0x40000000) set, other than -1.
    /// x86_64 only; the entry's `syscall` is `"*"`.
    X32,
    /// The argument has at least one of these bits set.
    ArgAnyBit {
        /// Argument index, 0..=5.
        arg: u8,
        /// The bits (their OR is the mask).
        bits: &'static [Named],
    },
    /// The argument equals one of these values.
    ArgIn {
        /// Argument index, 0..=5.
        arg: u8,
        /// The values.
        values: &'static [Named],
    },
    /// The argument equals none of these values.
    ArgNotIn {
        /// Argument index, 0..=5.
        arg: u8,
        /// The values.
        values: &'static [Named],
    },
}

/// What the filter does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fail the call with this errno; the process goes on.
    Errno(i32),
    /// Kill the whole process with SIGSYS.
    KillProcess,
}

/// One reviewed rule of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Syscall name, or `"*"` for the ABI rules.
    pub syscall: &'static str,
    /// Condition under which the rule applies.
    pub when: Cond,
    /// Action taken.
    pub action: Action,
    /// Why the rule exists.
    pub reason: &'static str,
}

/// Errors of building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The table has no syscall numbers for this architecture.
    #[error("seccomp: unsupported architecture {0}")]
    UnsupportedArch(&'static str),
    /// The table names a syscall the number lookup does not know.
    #[error("seccomp table: unknown syscall {0:?}")]
    UnknownSyscall(String),
    /// The table is malformed (duplicate rule, empty reason, bad argument...).
    #[error("seccomp table: {0}")]
    BadTable(String),
    /// The program exceeds the kernel's limit.
    #[error("seccomp program has {0} instructions, more than the kernel accepts")]
    TooLong(usize),
    /// An empty program would allow everything; refused.
    #[error("refusing to install an empty seccomp program")]
    Empty,
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS): {0}")]
    NoNewPrivs(io::Error),
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER): {0}")]
    Install(io::Error),
    /// Another thread of the process could not take the filter (TSYNC).
    #[error("seccomp: thread {0} could not be synchronised to the filter")]
    Tsync(i64),
}

/// The reviewed table, for `clawcage doctor` and the docs.
pub fn table() -> &'static [Entry] {
    table::TABLE
}

/// A compiled BPF program.
pub struct Filter {
    prog: Vec<libc::sock_filter>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({} instructions)", self.prog.len())
    }
}

/// Compiles [`table()`] for the running architecture.
pub fn build() -> Result<Filter, SeccompError> {
    let arch = native_arch()?;
    Ok(Filter { prog: compile(table::TABLE, &arch)? })
}

impl Filter {
    /// Installs the filter on the calling thread (and, via TSYNC, on any other
    /// thread of the process); every later child inherits it. Sets
    /// no_new_privs first if it is not set yet. Refuses an empty program.
    pub fn install(&self) -> Result<(), SeccompError> {
        if self.prog.is_empty() {
            return Err(SeccompError::Empty);
        }
        let len = u16::try_from(self.prog.len())
            .ok()
            .filter(|&l| i32::from(l) <= libc::BPF_MAXINSNS)
            .ok_or(SeccompError::TooLong(self.prog.len()))?;
        set_no_new_privs()?;
        let fprog = libc::sock_fprog { len, filter: self.prog.as_ptr().cast_mut() };
        // SAFETY: `fprog` points at `self.prog`, `len` instructions long, which
        // outlives the call; the kernel only copies the program out of it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &fprog as *const libc::sock_fprog,
            )
        };
        match ret {
            0 => Ok(()),
            tid if tid > 0 => Err(SeccompError::Tsync(tid)),
            _ => Err(SeccompError::Install(io::Error::last_os_error())),
        }
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// True for an empty program (which [`Filter::install`] refuses).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }
}

/// seccomp requires no_new_privs for an unprivileged caller; we set it always.
fn set_no_new_privs() -> Result<(), SeccompError> {
    if crate::sys::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0).ok() == Some(1) {
        return Ok(());
    }
    crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop).map_err(SeccompError::NoNewPrivs)
}

/// What the compiler needs to know about the running architecture.
struct Arch {
    /// `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`.
    audit: u32,
    /// Whether the x32 bit must be refused (x86_64).
    x32: bool,
}

fn native_arch() -> Result<Arch, SeccompError> {
    // Argument loads read the low word of a 64-bit slot: little-endian only.
    if cfg!(target_endian = "little") && cfg!(target_arch = "x86_64") {
        // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
        return Ok(Arch { audit: 0xc000_003e, x32: true });
    }
    if cfg!(target_endian = "little") && cfg!(target_arch = "aarch64") {
        // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
        return Ok(Arch { audit: 0xc000_00b7, x32: false });
    }
    Err(SeccompError::UnsupportedArch(std::env::consts::ARCH))
}

// Classic BPF, as seccomp uses it.
type Insn = libc::sock_filter;
const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const fn stmt(code: u16, k: u32) -> Insn {
    Insn { code, jt: 0, jf: 0, k }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// A jump offset, which classic BPF limits to 255.
fn short(distance: usize) -> Result<u8, SeccompError> {
    u8::try_from(distance).map_err(|_| SeccompError::BadTable(format!("jump of {distance} instructions")))
}

fn ret_value(action: Action) -> Result<u32, SeccompError> {
    match action {
        Action::Errno(e @ 1..=4095) => Ok(libc::SECCOMP_RET_ERRNO | e.unsigned_abs()),
        Action::Errno(e) => Err(SeccompError::BadTable(format!("errno {e} out of range"))),
        Action::KillProcess => Ok(libc::SECCOMP_RET_KILL_PROCESS),
    }
}

/// The rules of one syscall number.
struct Group<'a> {
    nr: u32,
    checks: Vec<&'a Entry>,
    always: Option<&'a Entry>,
}

/// The action of the single `"*"` entry with condition `cond`.
fn abi_action(entries: &[Entry], cond: Cond) -> Result<Action, SeccompError> {
    let mut found = entries.iter().filter(|e| e.when == cond);
    match (found.next(), found.next()) {
        (Some(e), None) if e.syscall == "*" => Ok(e.action),
        _ => Err(SeccompError::BadTable(format!("need exactly one \"*\" entry for {cond:?}"))),
    }
}

/// Groups the syscall entries by number (table order), skipping calls the
/// architecture does not have.
fn group(entries: &[Entry]) -> Result<Vec<Group<'_>>, SeccompError> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for e in entries {
        if e.reason.trim().is_empty() {
            return Err(SeccompError::BadTable(format!("{}: empty reason", e.syscall)));
        }
        if matches!(e.when, Cond::ForeignArch | Cond::X32) {
            continue;
        }
        let Some(nr) = table::number(e.syscall)? else {
            continue;
        };
        let i = match groups.iter().position(|g| g.nr == nr) {
            Some(i) => i,
            None => {
                groups.push(Group { nr, checks: Vec::new(), always: None });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        match e.when {
            Cond::Always if g.always.is_some() => {
                return Err(SeccompError::BadTable(format!("{}: two unconditional entries", e.syscall)))
            }
            Cond::Always => g.always = Some(e),
            _ => g.checks.push(e),
        }
    }
    Ok(groups)
}

/// Appends `ld arg; compare; ret action` for one argument-checked entry; a
/// mismatch falls through to the instruction after it.
fn emit_check(out: &mut Vec<Insn>, e: &Entry) -> Result<(), SeccompError> {
    let (arg, set) = match e.when {
        Cond::ArgAnyBit { arg, bits } => (arg, bits),
        Cond::ArgIn { arg, values } | Cond::ArgNotIn { arg, values } => (arg, values),
        _ => return Err(SeccompError::BadTable(format!("{}: not an argument check", e.syscall))),
    };
    if arg > 5 || set.is_empty() {
        return Err(SeccompError::BadTable(format!("{}: bad argument index or empty set", e.syscall)));
    }
    // Low 32 bits of args[arg] (little-endian): what the kernel reads for int arguments.
    out.push(stmt(LD_ABS, OFF_ARGS + 8 * u32::from(arg)));
    let n = set.len();
    match e.when {
        Cond::ArgAnyBit { .. } => {
            let mask = set.iter().fold(0, |m, b| m | b.value);
            out.push(jump(JSET, mask, 0, 1));
        }
        // Any hit jumps to the `ret` after the n compares; the last miss skips it.
        Cond::ArgIn { .. } => {
            for (i, v) in set.iter().enumerate() {
                let (jt, jf) = if i + 1 == n { (0, 1) } else { (short(n - 1 - i)?, 0) };
                out.push(jump(JEQ, v.value, jt, jf));
            }
        }
        // Any hit jumps past the `ret`; falling through all n compares reaches it.
        _ => {
            for (i, v) in set.iter().enumerate() {
                out.push(jump(JEQ, v.value, short(n - i)?, 0));
            }
        }
    }
    out.push(stmt(RET, ret_value(e.action)?));
    Ok(())
}

/// The one function that turns the table into a program.
fn compile(entries: &[Entry], arch: &Arch) -> Result<Vec<Insn>, SeccompError> {
    let foreign = ret_value(abi_action(entries, Cond::ForeignArch)?)?;
    let x32 = ret_value(abi_action(entries, Cond::X32)?)?;
    let groups = group(entries)?;

    let mut prog = vec![stmt(LD_ABS, OFF_ARCH), jump(JEQ, arch.audit, 1, 0), stmt(RET, foreign), stmt(LD_ABS, OFF_NR)];
    if arch.x32 {
        // -1 is left to the kernel (ENOSYS): tracers and probes use it.
        prog.extend([jump(JGE, X32_SYSCALL_BIT, 0, 2), jump(JEQ, u32::MAX, 1, 0), stmt(RET, x32)]);
    }

    // The listed numbers, sorted: a binary search of `jge` compares down to
    // leaves of a few `jeq`s. An allowed call then costs ~log2(n) compares,
    // not a walk of the whole list, at run time and when the kernel proves
    // the unlisted numbers allowed at attach (it emulates the filter once for
    // every number, which made a linear list superlinear to load).
    let mut groups = groups;
    groups.sort_by_key(|g| g.nr);
    let mut rets: Vec<Action> = Vec::new();
    for g in groups.iter().filter(|g| g.checks.is_empty()) {
        if let Some(e) = g.always {
            if !rets.contains(&e.action) {
                rets.push(e.action);
            }
        }
    }
    // (index in the tree, ret slot) of each jump to a shared `ret`, patched below.
    let mut patches = Vec::new();
    let tree = search(&groups, &rets, 0, &mut patches)?;
    let base = prog.len();
    let rets_at = base + tree.len();
    prog.extend(tree);
    for (i, slot) in patches {
        prog[base + i].jt = short(rets_at + slot - (base + i + 1))?;
    }
    for a in rets {
        prog.push(stmt(RET, ret_value(a)?));
    }

    if prog.len() > libc::BPF_MAXINSNS as usize {
        return Err(SeccompError::TooLong(prog.len()));
    }
    Ok(prog)
}

/// Groups per leaf of the search tree.
const LEAF: usize = 4;

/// The search tree over `groups` (sorted by number), `nr` loaded, to be
/// placed at index `at` of the tree: inner nodes `jge mid ? right : left`; a
/// leaf compares its numbers one by one, each hit running its argument
/// checks or jumping to its shared `ret` (recorded in `patches` as (index in
/// the tree, slot in `rets`)), and ends in `ret ALLOW`.
fn search(
    groups: &[Group<'_>],
    rets: &[Action],
    at: usize,
    patches: &mut Vec<(usize, usize)>,
) -> Result<Vec<Insn>, SeccompError> {
    let mut out = Vec::new();
    if groups.len() > LEAF {
        let (left, right) = groups.split_at(groups.len() / 2);
        let l = search(left, rets, at + 1, patches)?;
        out.push(jump(JGE, right[0].nr, short(l.len())?, 0));
        out.extend(l);
        out.extend(search(right, rets, at + out.len(), patches)?);
        return Ok(out);
    }
    for g in groups {
        if g.checks.is_empty() {
            let action =
                g.always.map(|e| e.action).ok_or_else(|| SeccompError::BadTable(format!("nr {}: no rule", g.nr)))?;
            let slot = rets.iter().position(|&a| a == action).unwrap_or(0);
            patches.push((at + out.len(), slot));
            out.push(jump(JEQ, g.nr, 0, 0)); // jt patched to the shared ret
            continue;
        }
        let mut body = Vec::new();
        for e in &g.checks {
            emit_check(&mut body, e)?;
        }
        let fallback = match g.always {
            Some(e) => ret_value(e.action)?,
            None => libc::SECCOMP_RET_ALLOW,
        };
        body.push(stmt(RET, fallback));
        out.push(jump(JEQ, g.nr, 0, short(body.len())?));
        out.extend(body);
    }
    out.push(stmt(RET, libc::SECCOMP_RET_ALLOW));
    Ok(out)
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Errno(libc::EPERM) => f.write_str("EPERM"),
            Action::Errno(libc::ENOSYS) => f.write_str("ENOSYS"),
            Action::Errno(e) => write!(f, "errno {e}"),
            Action::KillProcess => f.write_str("KILL_PROCESS"),
        }
    }
}

fn join(set: &[Named], sep: &str) -> String {
    set.iter().map(|n| n.name).collect::<Vec<_>>().join(sep)
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Always => f.write_str("always"),
            Cond::ForeignArch => f.write_str("any call through a non-native ABI (i386 int 0x80, arm32)"),
            Cond::X32 => f.write_str("syscall number has bit 0x40000000 (x32 ABI), except -1"),
            Cond::ArgAnyBit { arg, bits } => {
                write!(f, "arg{arg} (low 32 bits) has any of {}", join(bits, "|"))
            }
            Cond::ArgIn { arg, values } => {
                write!(f, "arg{arg} (low 32 bits) is {}", join(values, " or "))
            }
            Cond::ArgNotIn { arg, values } => {
                write!(f, "arg{arg} (low 32 bits) is none of {}", join(values, ", "))
            }
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] -> {}: {}", self.syscall, self.when, self.action, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    use std::time::Instant;

    /// How a forked child ended. Exit codes: 0 = the call succeeded,
    /// 1..=247 = its errno, 248 = test setup failed, 250 = panic, 251 = install failed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Exit(i32),
        Killed(Signal),
    }
    const OK: Outcome = Outcome::Exit(0);
    const DENIED: Outcome = Outcome::Exit(libc::EPERM);
    const NO_SYS: Outcome = Outcome::Exit(libc::ENOSYS);
    const SIGSYS: Outcome = Outcome::Killed(Signal::SIGSYS);

    fn outcome_of(action: Action) -> Outcome {
        match action {
            Action::Errno(e) => Outcome::Exit(e),
            Action::KillProcess => SIGSYS,
        }
    }

    /// Runs `f` in a forked child, under `filter` if given.
    fn in_child(filter: Option<&Filter>, f: impl FnOnce() -> i32) -> Outcome {
        // SAFETY: the child runs `f` (raw syscalls; a few tests use threads and
        // fork, which glibc's fork handlers make safe) and always leaves through
        // `_exit`, never returning into the test harness.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match filter {
                    Some(fl) if fl.install().is_err() => 251,
                    _ => f(),
                }))
                .unwrap_or(250);
                // SAFETY: ends the forked child without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => Outcome::Exit(code),
                WaitStatus::Signaled(_, sig, _) => Outcome::Killed(sig),
                other => panic!("unexpected wait status {other:?}"),
            },
        }
    }

    /// A raw syscall result as an exit code: 0 on success, else errno.
    fn rc(ret: libc::c_long) -> i32 {
        if ret >= 0 {
            return 0;
        }
        io::Error::last_os_error().raw_os_error().map_or(249, |e| e.min(247))
    }

    /// `rc(syscall(nr, args...))`.
    macro_rules! sys {
        ($nr:expr $(, $arg:expr)*) => {
            // SAFETY: test syscalls get integers, null, pointers to live locals
            // or NUL-terminated literals; the kernel validates all of them.
            rc(unsafe { libc::syscall($nr $(, $arg)*) })
        };
    }

    /// The slave side of a fresh pty (the master stays open), or -1.
    fn pty() -> libc::c_int {
        let mut name = [0 as libc::c_char; 64];
        // SAFETY: plain pty set-up; `name` is a live buffer of the given length
        // that ptsname_r NUL-terminates.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            if master < 0
                || libc::grantpt(master) != 0
                || libc::unlockpt(master) != 0
                || libc::ptsname_r(master, name.as_mut_ptr(), name.len()) != 0
            {
                return -1;
            }
            libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY)
        }
    }

    fn tty_ioctl(request: u64) -> i32 {
        let fd = pty();
        if fd < 0 {
            return 248;
        }
        let mut buf = [b'x'; 64]; // a char for TIOCSTI, room for the other replies
        sys!(libc::SYS_ioctl, fd, request, buf.as_mut_ptr())
    }

    /// clone() with fork semantics; the new process exits at once.
    fn raw_clone(flags: u64) -> i32 {
        // SAFETY: without CLONE_VM and with a null stack, clone behaves like
        // fork; the new process only calls _exit.
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0, 0, 0, 0) };
        if pid == 0 {
            // SAFETY: leaves the cloned process at once.
            unsafe { libc::_exit(0) }
        }
        if pid > 0 {
            let _ = waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
        }
        rc(pid)
    }

    fn timex_call(clock: Option<libc::clockid_t>) -> i32 {
        // SAFETY: an all-zero timex (modes = 0) is a valid read-only query.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        match clock {
            None => sys!(libc::SYS_adjtimex, &mut tx as *mut libc::timex),
            Some(c) => sys!(libc::SYS_clock_adjtime, c, &mut tx as *mut libc::timex),
        }
    }

    /// A call with arguments that succeed, or fail differently, without the filter.
    struct Probe {
        syscall: &'static str,
        what: &'static str,
        expect: Outcome,
        /// Host settings (sysctls, lockdown) may already refuse the call
        /// without the filter; the control run is then not required to differ.
        host_may_deny: bool,
        run: fn() -> i32,
    }

    macro_rules! probe {
        ($sys:literal, $what:literal, $expect:expr, $run:expr) => {
            Probe { syscall: $sys, what: $what, expect: $expect, host_may_deny: false, run: $run }
        };
        ($sys:literal, $what:literal, $expect:expr, host_may_deny, $run:expr) => {
            Probe { syscall: $sys, what: $what, expect: $expect, host_may_deny: true, run: $run }
        };
    }

    const NOWHERE: *const libc::c_char = c"/nonexistent-clawcage".as_ptr();
    const NULL: *const libc::c_void = std::ptr::null();
    /// A file in a missing directory: creating it fails with ENOENT unfiltered.
    const MISSING_FILE: *const libc::c_char = c"/nonexistent-clawcage/f".as_ptr();

    /// fchmod on a fresh memfd (a file nothing else sees) to `mode`.
    fn memfd_chmod(mode: u32) -> i32 {
        // SAFETY: memfd_create with a NUL-terminated literal name and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_memfd_create, c"clawcage-probe".as_ptr(), 0) };
        if fd < 0 {
            return 248;
        }
        sys!(libc::SYS_fchmod, fd, mode)
    }

    /// One line per probe, like the table it checks.
    #[rustfmt::skip]
    fn probes() -> Vec<Probe> {
        use libc::*;
        const HIGH: u64 = 1 << 32;
        vec![
            probe!("ioctl", "TIOCSTI on a pty", DENIED, || tty_ioctl(TIOCSTI)),
            probe!("ioctl", "TIOCSTI with high bits", DENIED, || tty_ioctl(HIGH | TIOCSTI)),
            probe!("ioctl", "TIOCLINUX", DENIED, || tty_ioctl(TIOCLINUX)),
            probe!("ioctl", "TIOCSETD", DENIED, || {
                let fd = pty();
                let ldisc: c_int = 0; // N_TTY
                sys!(SYS_ioctl, fd, TIOCSETD, &ldisc as *const c_int)
            }),
            probe!("ioctl", "TIOCGWINSZ stays allowed", OK, || tty_ioctl(TIOCGWINSZ)),
            probe!("clone", "CLONE_NEWNS", DENIED, || raw_clone(CLONE_NEWNS as u64)),
            probe!("clone", "CLONE_NEWUSER", DENIED, || raw_clone(CLONE_NEWUSER as u64)),
            probe!("clone", "CLONE_NEWNET with high bits", DENIED, || raw_clone(HIGH | CLONE_NEWNET as u64)),
            probe!("clone", "plain fork-like clone", OK, || raw_clone(0)),
            probe!("unshare", "CLONE_NEWUSER", DENIED, || sys!(SYS_unshare, CLONE_NEWUSER)),
            probe!("unshare", "CLONE_NEWTIME", DENIED, || sys!(SYS_unshare, CLONE_NEWTIME)),
            probe!("unshare", "0", OK, || sys!(SYS_unshare, 0)),
            probe!("unshare", "CLONE_FILES", OK, || sys!(SYS_unshare, CLONE_FILES)),
            probe!("socket", "AF_NETLINK", DENIED, || sys!(SYS_socket, AF_NETLINK, SOCK_RAW, 0)),
            probe!("socket", "AF_NETLINK with high bits", DENIED, || sys!(SYS_socket, HIGH | AF_NETLINK as u64, SOCK_RAW, 0)),
            probe!("socket", "AF_PACKET", DENIED, || sys!(SYS_socket, AF_PACKET, SOCK_RAW, 0)),
            probe!("socket", "AF_ALG", DENIED, || sys!(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0)),
            probe!("socket", "AF_UNIX", OK, || sys!(SYS_socket, AF_UNIX, SOCK_STREAM, 0)),
            probe!("socket", "AF_UNIX with high bits (kernel uses the low word)", OK, || sys!(SYS_socket, HIGH | AF_UNIX as u64, SOCK_STREAM, 0)),
            probe!("socket", "AF_INET", OK, || sys!(SYS_socket, AF_INET, SOCK_STREAM, 0)),
            probe!("socketpair", "AF_NETLINK", DENIED, || {
                let mut fds = [0 as c_int; 2];
                sys!(SYS_socketpair, AF_NETLINK, SOCK_RAW, 0, fds.as_mut_ptr())
            }),
            probe!("socketpair", "AF_UNIX", OK, || {
                let mut fds = [0 as c_int; 2];
                sys!(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, fds.as_mut_ptr())
            }),
            probe!("personality", "ADDR_NO_RANDOMIZE", DENIED, || sys!(SYS_personality, ADDR_NO_RANDOMIZE)),
            probe!("personality", "query", OK, || sys!(SYS_personality, 0xffff_ffff_u64)),
            probe!("personality", "PER_LINUX", OK, || sys!(SYS_personality, 0)),
            probe!("clone3", "null args", NO_SYS, || sys!(SYS_clone3, NULL, 0)),
            probe!("setns", "bad fd", DENIED, || sys!(SYS_setns, -1, 0)),
            probe!("ptrace", "PTRACE_TRACEME", DENIED, || sys!(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0)),
            probe!("process_vm_readv", "self, empty", DENIED, || sys!(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0)),
            probe!("process_vm_writev", "self, empty", DENIED, || sys!(SYS_process_vm_writev, getpid(), NULL, 0, NULL, 0, 0)),
            probe!("pidfd_getfd", "bad pidfd", DENIED, || sys!(SYS_pidfd_getfd, -1, 0, 0)),
            probe!("keyctl", "KEYCTL_GET_KEYRING_ID", DENIED, || sys!(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1)),
            probe!("add_key", "user key in the process keyring", DENIED, || {
                sys!(SYS_add_key, c"user".as_ptr(), c"clawcage-test".as_ptr(), c"x".as_ptr(), 1, KEY_SPEC_PROCESS_KEYRING)
            }),
            probe!("request_key", "missing user key", DENIED, || sys!(SYS_request_key, c"user".as_ptr(), c"clawcage-none".as_ptr(), NULL, 0)),
            probe!("bpf", "BPF_MAP_CREATE without attr", DENIED, host_may_deny, || sys!(SYS_bpf, 0, NULL, 0)),
            probe!("perf_event_open", "null attr", DENIED, host_may_deny, || sys!(SYS_perf_event_open, NULL, 0, -1, -1, 0)),
            probe!("userfaultfd", "flags 0", DENIED, host_may_deny, || sys!(SYS_userfaultfd, 0)),
            probe!("io_uring_setup", "null params", DENIED, host_may_deny, || sys!(SYS_io_uring_setup, 1, NULL)),
            probe!("io_uring_enter", "bad fd", DENIED, host_may_deny, || sys!(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0)),
            probe!("io_uring_register", "bad fd", DENIED, host_may_deny, || sys!(SYS_io_uring_register, -1, 0, NULL, 0)),
            probe!("mount", "tmpfs on a missing dir", DENIED, || sys!(SYS_mount, c"none".as_ptr(), NOWHERE, c"tmpfs".as_ptr(), 0, NULL)),
            probe!("umount2", "missing dir", DENIED, || sys!(SYS_umount2, NOWHERE, 0)),
            probe!("fsopen", "null name", DENIED, || sys!(SYS_fsopen, NULL, 0)),
            probe!("fsconfig", "bad fd", DENIED, || sys!(SYS_fsconfig, -1, 0, NULL, NULL, 0)),
            probe!("fsmount", "bad fd", DENIED, || sys!(SYS_fsmount, -1, 0, 0)),
            probe!("fspick", "missing path", DENIED, || sys!(SYS_fspick, AT_FDCWD, NOWHERE, 0)),
            probe!("move_mount", "missing paths", DENIED, || sys!(SYS_move_mount, AT_FDCWD, NOWHERE, AT_FDCWD, NOWHERE, 0)),
            probe!("open_tree", "missing path", DENIED, || sys!(SYS_open_tree, AT_FDCWD, NOWHERE, 0)),
            probe!("open_tree_attr", "missing path", DENIED, || sys!(467, AT_FDCWD, NOWHERE, 0, NULL, 0)),
            probe!("mount_setattr", "missing path", DENIED, || sys!(SYS_mount_setattr, AT_FDCWD, NOWHERE, 0, NULL, 0)),
            probe!("pivot_root", "missing dirs", DENIED, || sys!(SYS_pivot_root, NOWHERE, NOWHERE)),
            probe!("chroot", "missing dir", DENIED, || sys!(SYS_chroot, NOWHERE)),
            probe!("kexec_load", "too many segments", DENIED, host_may_deny, || sys!(SYS_kexec_load, 0, 1_000_000, NULL, 0x100)),
            probe!("kexec_file_load", "bad fds", DENIED, host_may_deny, || sys!(SYS_kexec_file_load, -1, -1, 0, NULL, 0)),
            probe!("init_module", "empty image", DENIED, host_may_deny, || sys!(SYS_init_module, NULL, 0, c"".as_ptr())),
            probe!("finit_module", "bad fd", DENIED, host_may_deny, || sys!(SYS_finit_module, -1, c"".as_ptr(), 0)),
            probe!("delete_module", "missing module", DENIED, host_may_deny, || sys!(SYS_delete_module, c"clawcage_none".as_ptr(), O_NONBLOCK)),
            probe!("open_by_handle_at", "bad fd", DENIED, || sys!(SYS_open_by_handle_at, -1, NULL, 0)),
            probe!("name_to_handle_at", "null handle", DENIED, || sys!(SYS_name_to_handle_at, AT_FDCWD, c"/".as_ptr(), NULL, NULL, 0)),
            probe!("syslog", "SYSLOG_ACTION_SIZE_BUFFER", DENIED, || sys!(SYS_syslog, 10, NULL, 0)),
            probe!("acct", "missing file", DENIED, || sys!(SYS_acct, NOWHERE)),
            probe!("swapon", "missing file", DENIED, || sys!(SYS_swapon, NOWHERE, 0)),
            probe!("swapoff", "missing file", DENIED, || sys!(SYS_swapoff, NOWHERE)),
            probe!("reboot", "bad magic", DENIED, || sys!(SYS_reboot, 0, 0, 0, NULL)),
            probe!("settimeofday", "null, null (no change)", DENIED, || sys!(SYS_settimeofday, NULL, NULL)),
            probe!("clock_settime", "bad clock", DENIED, || sys!(SYS_clock_settime, 9999, NULL)),
            probe!("adjtimex", "query", DENIED, || timex_call(None)),
            probe!("clock_adjtime", "query", DENIED, || timex_call(Some(CLOCK_REALTIME))),
            probe!("quotactl", "bad command", DENIED, || sys!(SYS_quotactl, 0, NULL, 0, NULL)),
            probe!("quotactl_fd", "bad fd", DENIED, || sys!(SYS_quotactl_fd, -1, 0, 0, NULL)),
            probe!("lookup_dcookie", "cookie 0", DENIED, || sys!(SYS_lookup_dcookie, 0, NULL, 0)),
            probe!("vhangup", "without a controlling tty", DENIED, || {
                // SAFETY: setsid takes no arguments; it detaches the child from the terminal.
                unsafe { setsid() };
                sys!(SYS_vhangup)
            }),
            probe!("nfsservctl", "removed call", DENIED, || sys!(SYS_nfsservctl, 0, NULL, NULL)),
            #[cfg(target_arch = "x86_64")]
            probe!("uselib", "missing file", DENIED, || sys!(SYS_uselib, NOWHERE)),
            #[cfg(target_arch = "x86_64")]
            probe!("iopl", "level 0", DENIED, host_may_deny, || sys!(SYS_iopl, 0)),
            #[cfg(target_arch = "x86_64")]
            probe!("ioperm", "empty range", DENIED, || sys!(SYS_ioperm, 0, 0, 0)),
            probe!("fanotify_init", "FAN_CLASS_NOTIF", DENIED, || sys!(SYS_fanotify_init, 0, 0)),
            probe!("openat", "O_CREAT with S_ISUID", DENIED, || sys!(SYS_openat, AT_FDCWD, MISSING_FILE, O_CREAT | O_WRONLY, 0o4755)),
            probe!("openat", "O_CREAT with S_ISGID", DENIED, || sys!(SYS_openat, AT_FDCWD, MISSING_FILE, O_CREAT | O_WRONLY, 0o2755)),
            probe!("openat", "plain read", OK, || sys!(SYS_openat, AT_FDCWD, c"/".as_ptr(), O_RDONLY | O_CLOEXEC, 0)),
            #[cfg(target_arch = "x86_64")]
            probe!("open", "O_CREAT with S_ISUID", DENIED, || sys!(SYS_open, MISSING_FILE, O_CREAT | O_WRONLY, 0o4755)),
            #[cfg(target_arch = "x86_64")]
            probe!("creat", "S_ISUID", DENIED, || sys!(SYS_creat, MISSING_FILE, 0o4755)),
            #[cfg(target_arch = "x86_64")]
            probe!("chmod", "S_ISUID", DENIED, || sys!(SYS_chmod, NOWHERE, 0o4755)),
            #[cfg(target_arch = "x86_64")]
            probe!("mknod", "regular file with S_ISUID", DENIED, || sys!(SYS_mknod, MISSING_FILE, S_IFREG | 0o4755, 0)),
            probe!("fchmod", "memfd with S_ISUID", DENIED, || memfd_chmod(0o4755)),
            probe!("fchmod", "memfd 0600", OK, || memfd_chmod(0o600)),
            probe!("fchmodat", "S_ISGID", DENIED, || sys!(SYS_fchmodat, AT_FDCWD, NOWHERE, 0o2755)),
            probe!("fchmodat2", "S_ISUID", DENIED, || sys!(SYS_fchmodat2, AT_FDCWD, NOWHERE, 0o4755, 0)),
            probe!("mknodat", "regular file with S_ISUID", DENIED, || sys!(SYS_mknodat, AT_FDCWD, MISSING_FILE, S_IFREG | 0o4755, 0)),
            probe!("openat2", "null how", NO_SYS, || sys!(SYS_openat2, AT_FDCWD, NOWHERE, NULL, 0)),
            probe!("getpid", "still allowed", OK, || sys!(SYS_getpid)),
            probe!("-1", "invalid number left to the kernel", NO_SYS, || sys!(-1 as c_long)),
        ]
    }

    fn listed(syscall: &str) -> bool {
        table().iter().any(|e| e.syscall == syscall)
    }

    /// Each probe runs twice: without the filter (the control) and with it. A
    /// refusal only counts if the control did not already give the same answer.
    #[test]
    fn every_probe_gets_its_answer_only_under_the_filter() {
        let filter = build().expect("build");
        let mut failures = Vec::new();
        for p in probes() {
            let control = in_child(None, p.run);
            let filtered = in_child(Some(&filter), p.run);
            let refusal_by_table = p.expect != OK && listed(p.syscall);
            if filtered != p.expect {
                failures.push(format!("{} ({}): got {filtered:?}, want {:?}", p.syscall, p.what, p.expect));
            } else if refusal_by_table && control == p.expect && !p.host_may_deny {
                failures.push(format!("{} ({}): control already gives {control:?}", p.syscall, p.what));
            } else if refusal_by_table && control == p.expect {
                println!("note: {} ({}) is refused by this host even without the filter", p.syscall, p.what);
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_entry_has_a_probe() {
        let probes = probes();
        for e in table().iter().filter(|e| e.syscall != "*") {
            if table::number(e.syscall).expect("known").is_none() {
                continue; // not on this architecture
            }
            assert!(
                probes.iter().any(|p| p.syscall == e.syscall && p.expect == outcome_of(e.action)),
                "no probe for {e}"
            );
        }
    }

    #[test]
    fn table_is_well_formed() {
        let t = table();
        for (i, e) in t.iter().enumerate() {
            assert!(!e.reason.trim().is_empty(), "{}: empty reason", e.syscall);
            if e.when == Cond::Always {
                let dup = t[..i].iter().any(|o| o.syscall == e.syscall && o.when == Cond::Always);
                assert!(!dup, "{}: duplicate unconditional entry", e.syscall);
            }
            if e.syscall != "*" {
                table::number(e.syscall).expect("every name resolves");
            }
        }
        assert_eq!(t.iter().filter(|e| e.when == Cond::ForeignArch).count(), 1);
        assert_eq!(t.iter().filter(|e| e.when == Cond::X32).count(), 1);
        for e in t {
            println!("{e}");
        }
    }

    #[test]
    fn compile_rejects_bad_tables() {
        let arch = native_arch().expect("arch");
        let abi = &table()[..2];
        let ptrace = Entry { syscall: "ptrace", when: Cond::Always, action: Action::Errno(1), reason: "r" };
        let mut dup = abi.to_vec();
        dup.extend([ptrace, ptrace]);
        assert!(matches!(compile(&dup, &arch), Err(SeccompError::BadTable(_))));
        let mut typo = abi.to_vec();
        typo.push(Entry { syscall: "ptrcae", ..ptrace });
        assert!(matches!(compile(&typo, &arch), Err(SeccompError::UnknownSyscall(_))));
        let mut no_reason = abi.to_vec();
        no_reason.push(Entry { reason: " ", ..ptrace });
        assert!(compile(&no_reason, &arch).is_err());
        assert!(compile(&[ptrace], &arch).is_err(), "the ABI entries are required");
    }

    #[test]
    fn install_refuses_an_empty_program() {
        assert!(matches!(Filter { prog: Vec::new() }.install(), Err(SeccompError::Empty)));
    }

    /// The kernel's `seccomp_is_const_allow`: does `nr` reach ALLOW with only
    /// arch/nr loads? If so the kernel caches it and never runs the filter.
    fn cached_allow(prog: &[Insn], arch: u32, nr: u32) -> bool {
        let (mut pc, mut a) = (0usize, 0u32);
        while let Some(i) = prog.get(pc) {
            let taken = match i.code {
                LD_ABS if i.k == OFF_NR => {
                    a = nr;
                    false
                }
                LD_ABS if i.k == OFF_ARCH => {
                    a = arch;
                    false
                }
                JEQ => a == i.k,
                JGE => a >= i.k,
                JSET => a & i.k != 0,
                RET => return i.k == libc::SECCOMP_RET_ALLOW,
                _ => return false,
            };
            pc += 1;
            if (i.code & 0x07) == libc::BPF_JMP as u16 {
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
        }
        false
    }

    #[test]
    fn only_listed_syscalls_run_the_filter() {
        let arch = native_arch().expect("arch");
        let filter = build().expect("build");
        let listed: Vec<u32> = table().iter().filter_map(|e| table::number(e.syscall).ok().flatten()).collect();
        for nr in 0..1024 {
            assert_eq!(cached_allow(&filter.prog, arch.audit, nr), !listed.contains(&nr), "nr {nr}");
        }
        if arch.x32 {
            assert!(!cached_allow(&filter.prog, arch.audit, X32_SYSCALL_BIT | 39));
        }
        assert!(!cached_allow(&filter.prog, 0x4000_0003, 39), "i386 must not be allowed");
    }

    #[test]
    fn build_is_small_and_fast() {
        let start = Instant::now();
        let n = 1000;
        for _ in 0..n {
            build().expect("build");
        }
        let filter = build().expect("build");
        println!(
            "seccomp: {} entries, {} instructions, build() {:.1} µs",
            table().len(),
            filter.len(),
            start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
        assert!(!filter.is_empty() && filter.len() < 256);
    }

    #[test]
    fn fork_threads_and_spawn_still_work() {
        let filter = build().expect("build");
        let result = in_child(Some(&filter), || {
            // SAFETY: the grandchild only calls _exit.
            match unsafe { fork() } {
                // SAFETY: leaves the grandchild at once.
                Ok(ForkResult::Child) => unsafe { libc::_exit(7) },
                Ok(ForkResult::Parent { child }) if matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 7))) => {}
                _ => return 10,
            }
            // pthread_create tries clone3 first and falls back to clone on ENOSYS.
            if std::thread::spawn(|| 42).join().ok() != Some(42) {
                return 11;
            }
            // posix_spawn likewise (clone3 with CLONE_VFORK, then clone).
            match std::process::Command::new("/bin/true").status() {
                Ok(s) if s.success() => 0,
                _ => 12,
            }
        });
        assert_eq!(result, OK);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_numbers_fail_with_eperm() {
        let filter = build().expect("build");
        let x32_getpid = || sys!(X32_SYSCALL_BIT as libc::c_long | libc::SYS_getpid);
        println!("x32 getpid without the filter: {:?}", in_child(None, x32_getpid));
        assert_eq!(in_child(Some(&filter), x32_getpid), DENIED);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn i386_int80_fails_with_eperm() {
        fn int80_getpid() -> i32 {
            let ret: i64;
            // SAFETY: i386 getpid (eax = 20) takes no arguments and touches no
            // memory; the registers the int 0x80 path may clobber are declared.
            unsafe {
                std::arch::asm!("int 0x80", inlateout("rax") 20i64 => ret,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _, options(nostack));
            }
            if ret < 0 {
                return i32::try_from(-ret).unwrap_or(255);
            }
            // SAFETY: getpid has no preconditions.
            if ret == i64::from(unsafe { libc::getpid() }) {
                0
            } else {
                249
            }
        }
        let filter = build().expect("build");
        let control = in_child(None, int80_getpid);
        let filtered = in_child(Some(&filter), int80_getpid);
        if control == OK {
            assert_eq!(filtered, DENIED);
        } else {
            println!("note: no ia32 emulation on this kernel ({control:?})");
            assert_ne!(filtered, OK);
        }
    }

    /// Nanoseconds per call of `f`: the best of 5 rounds of `n` calls.
    fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
        let round = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
        };
        (0..5).map(|_| round(&mut f)).fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn print_syscall_overhead() {
        let filter = build().expect("build");
        let mut fds = [0 as libc::c_int; 2];
        assert_eq!(sys!(libc::SYS_pipe2, fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let [rd, wr] = fds;
        let status = in_child(None, || {
            let mut avail: libc::c_int = 0;
            let mut run = || {
                let getpid = per_call(100_000, || {
                    sys!(libc::SYS_getpid);
                });
                let ioctl = per_call(100_000, || {
                    sys!(libc::SYS_ioctl, rd, libc::FIONREAD, &mut avail as *mut libc::c_int);
                });
                [getpid, ioctl]
            };
            let before = run();
            let t = Instant::now();
            if filter.install().is_err() {
                return 251;
            }
            let install = t.elapsed().as_secs_f64() * 1e9;
            let after = run();
            let out = [before[0], before[1], after[0], after[1], install].map(f64::to_bits);
            // SAFETY: writes the bytes of a live array to our pipe.
            unsafe { libc::write(wr, out.as_ptr().cast(), std::mem::size_of_val(&out)) };
            0
        });
        assert_eq!(status, OK);
        let mut raw = [0u64; 5];
        // SAFETY: reads into a live array of the given size.
        let n = unsafe { libc::read(rd, raw.as_mut_ptr().cast(), std::mem::size_of_val(&raw)) };
        assert_eq!(n, 40);
        let [g0, i0, g1, i1, install] = raw.map(f64::from_bits);
        println!(
            "getpid {g0:.0} -> {g1:.0} ns (cached allow); ioctl(FIONREAD) {i0:.0} -> {i1:.0} ns (filter runs); \
             install {:.0} µs ({} instructions)",
            install / 1e3,
            filter.len()
        );
    }
}
