//! The sandbox's init: pid 1 of the new pid namespace.
//!
//! [`run`] is the whole setup sequence, top to bottom, each step with the
//! reason it sits where it does; then [`serve`] starts commands on request,
//! reaps every process, and reports exits. Init never runs untrusted code
//! itself, and every command it starts inherits all the restrictions.

use crate::mountplan::MountOp;
use crate::proto::{self, Reply, Request};
use crate::seccomp::Filter;
use crate::{caps, cgroup, landlock, nix_step, rootfs, spawn, step, sys, StepError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, setsid, Pid};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Everything init needs, prepared by the supervisor before the clone.
pub struct InitConfig<'a> {
    /// Mount operations, in order.
    pub ops: &'a [MountOp],
    /// Compiled seccomp filter.
    pub filter: &'a Filter,
    /// rlimits to set (always RLIMIT_FSIZE/CORE; memory/pids when no cgroup).
    pub rlimits: &'a [(Resource, u64)],
    /// Drop supplementary groups (possible only when the supervisor is host root).
    pub clear_groups: bool,
    /// Run even if Landlock is unavailable (the policy says so).
    pub allow_missing_landlock: bool,
    /// Listen on 127.0.0.1:port inside the network namespace for the egress
    /// proxy, and hand the listening socket out with `Ready`.
    pub proxy_port: Option<u16>,
    /// `tasks` files of the sandbox's v1 cgroups, opened by the supervisor;
    /// init moves itself in through them before anything else.
    pub cgroup_tasks: &'a [OwnedFd],
}

/// Message from the supervisor that releases init: maps are written and init
/// is in its cgroups. Idmapped trees travel beside it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Go;

/// Entry point in the cloned child. Never returns.
pub fn run(cfg: &InitConfig<'_>, ctl: OwnedFd) -> ! {
    match setup(cfg, &ctl) {
        Ok(listener) => {
            let fds: Vec<RawFd> = listener.iter().map(|l| l.as_raw_fd()).collect();
            let sent = proto::send(ctl.as_fd(), &Reply::Ready, &fds);
            // Only the supervisor keeps the listener: nothing inside holds it.
            drop(listener);
            let code = match sent {
                Ok(()) => serve(&ctl),
                Err(_) => 1,
            };
            sys::exit_now(code)
        }
        Err(e) => {
            let detail = match e.path.as_os_str().is_empty() {
                true => e.source.to_string(),
                false => format!("{}: {}", e.path.display(), e.source),
            };
            let reply = Reply::SetupFailed { step: e.step.to_string(), detail };
            let _ = proto::send(ctl.as_fd(), &reply, &[]);
            sys::exit_now(1)
        }
    }
}

/// The setup sequence. Order matters; each comment says why a step is here.
/// Returns the egress listener when the plan has network.
fn setup(cfg: &InitConfig<'_>, ctl: &OwnedFd) -> Result<Option<std::net::TcpListener>, StepError> {
    // 1. Die with the supervisor: if it is killed, pid 1 goes, and with it
    //    every process of the namespace.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0).map_err(step("PR_SET_PDEATHSIG", ""))?;
    // We are a copy of the supervisor: its command line and environment
    // (host secrets!) are still in our memory and in /proc/1. Wipe them.
    sys::scrub_cmdline_and_environ(b"clawcage-init")
        .map_err(step("scrub inherited argv/environ", "/proc/self/stat"))?;

    // 2. Into our v1 cgroups (the cgroup2 one we were born in), before we
    //    do anything else; then wait for the supervisor to write our uid/gid
    //    maps (that must happen from outside).
    cgroup::join_self(cfg.cgroup_tasks).map_err(step("join cgroups", ""))?;
    let idmapped = match proto::recv::<Go>(ctl.as_fd()).map_err(step("wait for supervisor", ""))? {
        Some((Go, fds)) => fds,
        None => sys::exit_now(1), // supervisor gone
    };
    // Only now non-dumpable, so that init's memory and fds are out of ptrace
    // reach: earlier, /proc/<init>/{uid_map,setgroups} would turn root-owned
    // and an unprivileged supervisor could not write them (EACCES).
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0).map_err(step("PR_SET_DUMPABLE", ""))?;

    // 3. Become the namespace's root (the uid/gid the maps name), and shed
    //    the supplementary groups inherited from the host.
    let root = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).map_err(nix_step("setresgid", ""))?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(nix_step("setresuid", ""))?;
    if cfg.clear_groups {
        nix::unistd::setgroups(&[]).map_err(nix_step("setgroups", ""))?;
    }

    // 4. A cgroup namespace rooted at our own cgroup, now that we are in it:
    //    /proc/self/cgroup shows "/" and the host hierarchy stays hidden.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(nix_step("unshare(CLONE_NEWCGROUP)", ""))?;
    nix::unistd::sethostname("clawcage").map_err(nix_step("sethostname", ""))?;

    // 5. The filesystem: a fresh root with only what the plan names.
    rootfs::build(cfg.ops, idmapped)?;

    // 6. The network namespace starts with loopback down; up, and nothing else.
    sys::loopback_up().map_err(step("bring up loopback", "lo"))?;

    // 7. No terminal of the host: a new session, stdio on /dev/null, and no
    //    descriptor but the control socket.
    setsid().map_err(nix_step("setsid", ""))?;
    let null =
        std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(step("open", "/dev/null"))?;
    for fd in 0..3 {
        dup2(null.as_raw_fd(), fd).map_err(nix_step("dup2", "/dev/null"))?;
    }
    drop(null);
    sys::close_all_except(ctl.as_raw_fd()).map_err(step("close inherited descriptors", ""))?;

    // 7b. The only way out: a listener on the sandbox's loopback whose socket
    //     goes to the supervisor (the host proxy accepts on it). Bound here,
    //     after the descriptor sweep and before seccomp; being bound, the
    //     port cannot be taken by anything inside.
    let listener = match cfg.proxy_port {
        Some(port) => Some(
            std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
                .map_err(step("listen for the egress proxy", "127.0.0.1"))?,
        ),
        None => None,
    };

    // 8. Resource limits that are per process (file size, core dumps; memory
    //    and process count when no cgroup could be used).
    for (res, value) in cfg.rlimits {
        setrlimit(*res, *value, *value).map_err(nix_step("setrlimit", ""))?;
    }

    // 9. Privileges: capabilities gone for good, then no_new_privs (both
    //    Landlock and seccomp require it from an unprivileged process).
    caps::drop_all().map_err(step("drop capabilities", ""))?;
    caps::no_new_privs().map_err(step("PR_SET_NO_NEW_PRIVS", ""))?;

    // 10. Landlock mirrors the filesystem plan on the new root's paths.
    match landlock::apply(cfg.ops) {
        Ok(landlock::Status::Full | landlock::Status::Partial) => {}
        Ok(landlock::Status::None) if cfg.allow_missing_landlock => {}
        Ok(landlock::Status::None) => return Err(step("landlock", "")(io::Error::other(
            "Landlock is not available on this kernel (policy [sandbox] allow_missing = [\"landlock\"] accepts that)",
        ))),
        Err(e) => return Err(step("landlock", "")(io::Error::other(e))),
    }

    // 11. seccomp last, so the filter need not allow any setup call.
    cfg.filter.install().map_err(|e| step("seccomp", "")(io::Error::other(e.to_string())))?;

    // 12. Check from inside that the kernel sees what we meant.
    let status = std::fs::read_to_string("/proc/self/status").map_err(step("read", "/proc/self/status"))?;
    caps::verify(&status).map_err(|e| step("verify restrictions", "/proc/self/status")(io::Error::other(e)))?;
    Ok(listener)
}

/// Serve exec requests until the supervisor goes away. Returns the exit code.
fn serve(ctl: &OwnedFd) -> i32 {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if mask.thread_block().is_err() {
        return 1;
    }
    let Ok(sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        return 1;
    };
    let mut running: HashMap<Pid, u64> = HashMap::new();
    loop {
        let mut fds = [PollFd::new(ctl.as_fd(), PollFlags::POLLIN), PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 1,
        }
        let sig_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let ctl_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if sig_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            if reap(ctl, &mut running).is_err() {
                return 1;
            }
        }
        if ctl_ready {
            match proto::recv::<Request>(ctl.as_fd()) {
                Ok(Some((req, fds))) => {
                    if handle(ctl, req, fds, &mut running).is_err() {
                        return 1;
                    }
                }
                _ => return 0, // supervisor gone: returning ends the namespace
            }
        }
    }
}

fn reap(ctl: &OwnedFd, running: &mut HashMap<Pid, u64>) -> io::Result<()> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
            Ok(WaitStatus::Exited(pid, code)) => report(ctl, running, pid, (code & 0xff) << 8)?,
            Ok(WaitStatus::Signaled(pid, sig, core)) => {
                report(ctl, running, pid, sig as i32 | if core { 0x80 } else { 0 })?
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn report(ctl: &OwnedFd, running: &mut HashMap<Pid, u64>, pid: Pid, status: i32) -> io::Result<()> {
    match running.remove(&pid) {
        Some(id) => proto::send(ctl.as_fd(), &Reply::Exited { id, status }, &[]),
        None => Ok(()), // an orphan we adopted as pid 1
    }
}

fn handle(ctl: &OwnedFd, req: Request, fds: Vec<OwnedFd>, running: &mut HashMap<Pid, u64>) -> io::Result<()> {
    match req {
        Request::Exec { id, argv, env, cwd, tty } => {
            let reply = match start(&argv, &env, &cwd, tty, fds) {
                Ok((pid, master)) => {
                    running.insert(pid, id);
                    let fds: Vec<RawFd> = master.iter().map(|m| m.as_raw_fd()).collect();
                    return proto::send(ctl.as_fd(), &Reply::Started { id }, &fds);
                }
                Err(e) => Reply::Failed { id, errno: e.raw_os_error().unwrap_or(libc::EIO), detail: e.to_string() },
            };
            proto::send(ctl.as_fd(), &reply, &[])
        }
        Request::Signal { id, signal } => {
            if let Some((pid, _)) = running.iter().find(|(_, v)| **v == id) {
                if let Ok(sig) = Signal::try_from(signal) {
                    // The command leads its own session and process group.
                    let _ = kill(Pid::from_raw(-pid.as_raw()), sig);
                }
            }
            Ok(())
        }
        Request::Resize { .. } => Ok(()), // the supervisor resizes the pty master it holds
    }
}

/// Start one command. Returns its pid and, with a tty, the pty master.
fn start(
    argv: &[String],
    env: &[(String, String)],
    cwd: &str,
    tty: Option<(u16, u16)>,
    fds: Vec<OwnedFd>,
) -> io::Result<(Pid, Option<OwnedFd>)> {
    let (master, stdio): (Option<OwnedFd>, Vec<OwnedFd>) = match tty {
        Some((rows, cols)) => {
            let (m, s) = open_pty(rows, cols)?;
            (Some(m), vec![s])
        }
        None if fds.len() == 3 => (None, fds),
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "exec needs three descriptors")),
    };
    let raw = |i: usize| stdio[i.min(stdio.len() - 1)].as_raw_fd();
    let prepared = spawn::Prepared::new(argv, env, cwd, [raw(0), raw(1), raw(2)], tty.is_some())?;
    let pid = spawn::spawn(&prepared)?;
    Ok((Pid::from_raw(pid), master))
}

/// Open a pty pair in the sandbox's own devpts.
fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave =
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC).open(name)?;
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    sys::set_winsize(master.as_raw_fd(), &ws)?;
    // SAFETY: into_raw_fd hands over ownership of the master descriptor.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master, OwnedFd::from(slave)))
}

use std::os::unix::fs::OpenOptionsExt;
