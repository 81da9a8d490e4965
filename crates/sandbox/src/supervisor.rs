//! The host half of a sandbox: [`Sandbox::start`] prepares everything that
//! needs the host's view or host privileges, clones init into the new
//! namespaces, finishes its identity from outside, and waits for init to
//! report every layer in place.

use crate::cgroup::{self, Cgroup, Mechanism};
use crate::init::{self, Go, InitConfig};
use crate::mountplan::{self, MountOp};
use crate::proto::{self, Reply, Request};
use crate::pump::{self, Input, Sink};
use crate::{seccomp, sys, Collected, ExecSpec, Options, Outcome, SandboxError};
use clawcage_policy::Plan;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getegid, geteuid, ForkResult, Pid};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// Host uid/gid that the sandbox's root maps to when host root runs clawcage
/// on root-owned files: an id no real account uses, so the sandbox owns
/// nothing on the host (not /etc/shadow, not /root) beyond its idmapped binds.
pub const ISOLATED_ID: u32 = 0x7fff_0000;

const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// A running sandbox (see the crate docs).
pub struct Sandbox {
    init: Pid,
    ctl: OwnedFd,
    cgroup: Option<Cgroup>,
    mechanism: Mechanism,
    plan: Plan,
    next_id: u64,
    /// Bytes the last command wrote to stdout and stderr.
    last_output: [u64; 2],
    stopped: bool,
    /// The egress listener init made inside the network namespace.
    proxy_listener: Option<OwnedFd>,
}

/// Who the sandbox's root is on the host.
struct Identity {
    uid: u32,
    gid: u32,
    /// The supervisor lacks CAP_SETUID on the host: maps may only name itself.
    unprivileged: bool,
    /// Workspace binds need an idmapped copy (root-owned files, isolated id).
    idmap: bool,
}

impl Sandbox {
    /// Start a sandbox for `plan`. Fails closed: every layer is applied and
    /// checked, or the error says which one could not be.
    ///
    /// The caller must be single-threaded (the child is a fork of it).
    pub fn start(plan: &Plan, opts: &Options) -> Result<Sandbox, SandboxError> {
        let allow = |layer: &str| plan.allow_missing.iter().any(|l| l == layer);

        // 1. Decide who the sandbox's root is on the host.
        let id = identity(plan)?;

        // 2. Everything that needs the host's view of the filesystem.
        let mut ops = mountplan::resolve(plan, opts.tty, id.idmap)?;
        for op in &mut ops {
            if let MountOp::File { tree, .. } = op {
                *tree = !id.unprivileged;
            }
        }

        // 3. The seccomp filter, compiled before the clone (it is data).
        let filter =
            seccomp::build().map_err(|e| SandboxError::Unavailable { layer: "seccomp", reason: e.to_string() })?;

        // 4. Limits: cgroups where we can, rlimits as the last resort; a CPU
        //    limit has no rlimit equivalent, so it needs a cgroup or consent.
        //    A watcher outside the sandbox removes the cgroups even if we are
        //    SIGKILLed (the kernel takes care of processes and mounts); it is
        //    forked and told before the groups are made (see `limits`).
        let (cg, mechanism) = limits(plan)?;
        let rlimits = cgroup::rlimits(&plan.limits, mechanism);

        // 5. The control channel to init.
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| SandboxError::host("socketpair")(e.into()))?;

        // 6. Clone init into new user, mount, pid, net, ipc and uts
        //    namespaces (cgroup namespace: init unshares it once it is in
        //    its cgroup, so the namespace is rooted there). Init is born in
        //    the cgroup2 group and moves itself into the v1 groups first
        //    thing (see Cgroup::entry: no slow cgroup.procs write from here).
        let entry = cg
            .as_ref()
            .map(Cgroup::entry)
            .transpose()
            .map_err(|e| SandboxError::Unavailable { layer: "cgroups", reason: e.to_string() })?;
        let cfg = InitConfig {
            ops: &ops,
            filter: &filter,
            rlimits: &rlimits,
            clear_groups: !id.unprivileged,
            allow_missing_landlock: allow("landlock"),
            proxy_port: plan.network.as_ref().map(|n| n.proxy_port),
            cgroup_tasks: entry.as_ref().map_or(&[], |e| e.tasks.as_slice()),
        };
        let mut moved_in = true;
        let forked = match entry.as_ref().and_then(|e| e.into.as_ref()) {
            Some(group) => match sys::clone_into_cgroup(NAMESPACES, group.as_raw_fd()) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    moved_in = false;
                    sys::clone_namespaces(NAMESPACES)
                }
                other => other,
            },
            None => sys::clone_namespaces(NAMESPACES),
        };
        let pid = match forked.map_err(|e| SandboxError::Unavailable {
            layer: "namespaces",
            reason: format!("clone with new user/mount/pid/net/ipc/uts namespaces: {e}"),
        })? {
            sys::Forked::Child => {
                // Init closes every inherited descriptor but `theirs` in its setup.
                drop(ours);
                init::run(&cfg, theirs)
            }
            sys::Forked::Parent(pid) => Pid::from_raw(pid),
        };
        drop(theirs);
        drop(entry);
        let sb = Sandbox {
            init: pid,
            ctl: ours,
            cgroup: cg,
            mechanism,
            plan: plan.clone(),
            next_id: 1,
            last_output: [0; 2],
            stopped: false,
            proxy_listener: None,
        };

        // 7. From outside: the uid/gid maps (and cgroups where clone3 is
        //    missing), then the idmapped workspace trees (they need init's
        //    user namespace), then release init.
        if let (Some(cg), false) = (&sb.cgroup, moved_in) {
            cg.add_pid(pid.as_raw())
                .map_err(|e| SandboxError::Unavailable { layer: "cgroups", reason: e.to_string() })?;
        }
        write_maps(pid, &id)?;
        let fds = op_fds(pid, &ops, plan, &id)?;
        let raw: Vec<RawFd> = fds.iter().map(|t| t.as_raw_fd()).collect();
        proto::send(sb.ctl.as_fd(), &Go, &raw).map_err(|e| SandboxError::Gone(e.to_string()))?;
        drop(fds);

        // 8. Init applies the rest and checks it from inside.
        let mut sb = sb;
        match proto::recv::<Reply>(sb.ctl.as_fd()) {
            Ok(Some((Reply::Ready, mut fds))) => {
                if plan.network.is_some() {
                    let fd = fds.pop().ok_or_else(|| SandboxError::Setup {
                        step: "listen for the egress proxy".into(),
                        detail: "init sent no listener".into(),
                    })?;
                    sb.proxy_listener = Some(fd);
                }
                Ok(sb)
            }
            Ok(Some((Reply::SetupFailed { step, detail }, _))) => Err(SandboxError::Setup { step, detail }),
            Ok(other) => Err(SandboxError::Gone(format!("unexpected reply during setup: {other:?}"))),
            Err(e) => Err(SandboxError::Gone(e.to_string())),
        }
    }

    /// The listening socket on `127.0.0.1:PROXY_PORT` inside the sandbox's
    /// network namespace (when the plan has network), for the egress proxy
    /// to accept on. Taken once; later calls return `None`.
    pub fn take_proxy_listener(&mut self) -> Option<std::net::TcpListener> {
        self.proxy_listener.take().map(std::net::TcpListener::from)
    }

    /// Which mechanism enforces the limits of this sandbox.
    pub fn limits_mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Bytes the last [`Sandbox::exec`] delivered to its stdout and stderr
    /// sinks (with a tty, all output counts as stdout), for the audit record.
    pub fn last_output_bytes(&self) -> (u64, u64) {
        (self.last_output[0], self.last_output[1])
    }

    /// The plan this sandbox runs under.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Run one command, streaming its stdio. `signals`: a signalfd whose
    /// signals are forwarded to the command (the CLI passes SIGINT, SIGTERM,
    /// SIGHUP, SIGQUIT and SIGWINCH).
    pub fn exec<'s>(
        &mut self,
        spec: &ExecSpec,
        stdin: Input<'_>,
        stdout: Sink<'s>,
        stderr: Sink<'s>,
        signals: Option<BorrowedFd<'_>>,
    ) -> Result<Outcome, SandboxError> {
        let id = self.next_id;
        self.next_id += 1;
        self.last_output = [0; 2];
        let req = Request::Exec {
            id,
            argv: spec.argv.clone(),
            env: spec.env.clone().unwrap_or_else(|| self.plan.env.clone()),
            cwd: spec.cwd.clone().unwrap_or_else(|| self.plan.workspace.clone()).to_string_lossy().into_owned(),
            tty: spec.tty,
        };
        let pipes =
            if spec.tty.is_some() { None } else { Some(pump::Pipes::new().map_err(SandboxError::host("pipe"))?) };
        let fds: Vec<RawFd> = pipes.as_ref().map(|p| p.child_ends()).unwrap_or_default();
        proto::send(self.ctl.as_fd(), &req, &fds).map_err(|e| SandboxError::Gone(e.to_string()))?;
        let (pipes, master) = match pipes {
            Some(mut p) => {
                p.close_child_ends();
                (Some(p), None)
            }
            None => (None, None),
        };
        let master = match self.recv_started(id)? {
            (Reply::Started { .. }, mut fds) => master.or_else(|| fds.pop()),
            (Reply::Failed { errno, detail, .. }, _) => {
                let prog = spec.argv.first().map(String::as_str).unwrap_or("");
                return Ok(Outcome::StartFailed(errno, format!("cannot run {prog}: {detail}")));
            }
            (other, _) => return Err(SandboxError::Gone(format!("unexpected reply: {other:?}"))),
        };
        let oom_before = self.cgroup.as_ref().is_some_and(|c| c.oom_killed());
        let limits = pump::Limits {
            timeout: spec.timeout.or(self.plan.limits.timeout_ms.map(Duration::from_millis)),
            output: spec.output_limit.or(self.plan.limits.output),
        };
        let (end, output) = pump::run(self.ctl.as_fd(), id, pipes, master, stdin, stdout, stderr, signals, &limits)?;
        self.last_output = output;
        let oom_now = !oom_before && self.cgroup.as_ref().is_some_and(|c| c.oom_killed());
        Ok(match end {
            pump::End::Status(status) if libc::WIFEXITED(status) => Outcome::Exited(libc::WEXITSTATUS(status)),
            pump::End::Status(status) if libc::WTERMSIG(status) == libc::SIGKILL && oom_now => Outcome::MemoryLimit,
            pump::End::Status(status) => Outcome::Signaled(libc::WTERMSIG(status)),
            pump::End::TimedOut => Outcome::TimedOut,
            pump::End::OutputLimit => Outcome::OutputLimit,
        })
    }

    /// Wait for init's answer to starting command `id`. A background
    /// command (see [`Sandbox::spawn`]) may end meanwhile: its exit report
    /// is skipped.
    fn recv_started(&self, id: u64) -> Result<(Reply, Vec<OwnedFd>), SandboxError> {
        loop {
            match proto::recv::<Reply>(self.ctl.as_fd()) {
                Ok(Some((Reply::Exited { id: other, .. }, _))) if other != id => continue,
                Ok(Some(got)) => return Ok(got),
                Ok(None) => return Err(SandboxError::Gone("init exited".into())),
                Err(e) => return Err(SandboxError::Gone(e.to_string())),
            }
        }
    }

    /// Start a long-lived command in the background (an MCP server, say)
    /// whose stdin, stdout and stderr are the given descriptors themselves
    /// (pipes the caller holds the other ends of), not relayed: the call
    /// returns once it runs, and later [`Sandbox::exec`]s run beside it. It
    /// lives under every layer of the sandbox like any command, has no
    /// timeout or output limit, and ends when it exits or the sandbox stops.
    /// Returns its command id, or the reason it could not be started.
    pub fn spawn(
        &mut self,
        spec: &ExecSpec,
        stdin: BorrowedFd<'_>,
        stdout: BorrowedFd<'_>,
        stderr: BorrowedFd<'_>,
    ) -> Result<Result<u64, String>, SandboxError> {
        if spec.tty.is_some() {
            return Ok(Err("a background command cannot have a tty".into()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let req = Request::Exec {
            id,
            argv: spec.argv.clone(),
            env: spec.env.clone().unwrap_or_else(|| self.plan.env.clone()),
            cwd: spec.cwd.clone().unwrap_or_else(|| self.plan.workspace.clone()).to_string_lossy().into_owned(),
            tty: None,
        };
        let fds = [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()];
        proto::send(self.ctl.as_fd(), &req, &fds).map_err(|e| SandboxError::Gone(e.to_string()))?;
        match self.recv_started(id)? {
            (Reply::Started { .. }, _) => Ok(Ok(id)),
            (Reply::Failed { detail, .. }, _) => {
                let prog = spec.argv.first().map(String::as_str).unwrap_or("");
                Ok(Err(format!("cannot run {prog}: {detail}")))
            }
            (other, _) => Err(SandboxError::Gone(format!("unexpected reply: {other:?}"))),
        }
    }

    /// Run one command with `stdin` as its input and collect its output.
    pub fn exec_collect(&mut self, spec: &ExecSpec, stdin: &[u8]) -> Result<Collected, SandboxError> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let outcome = self.exec(spec, Input::Bytes(stdin), Sink::Buffer(&mut out), Sink::Buffer(&mut err), None)?;
        Ok(Collected { outcome, stdout: out, stderr: err })
    }

    /// Stop the sandbox: every process killed, cgroups removed. Mounts and
    /// namespaces go with the last process.
    pub fn stop(mut self) -> Result<(), SandboxError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), SandboxError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // Killing pid 1 of a pid namespace kills every process in it.
        let _ = kill(self.init, Signal::SIGKILL);
        let _ = waitpid(self.init, None);
        match self.cgroup.take() {
            Some(cg) => {
                cg.destroy().map_err(|e| SandboxError::Unavailable { layer: "cgroups", reason: e.to_string() })?;
                watcher_note(WATCH_REMOVED);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// Create the sandbox's cgroups when a limit needs one. Moving a process
/// into a cgroup waits for an RCU grace period on kernels whose cgroup
/// hierarchy lacks `favordynmods` (~7 ms here), so no limit, no cgroup.
fn limits(plan: &Plan) -> Result<(Option<Cgroup>, Mechanism), SandboxError> {
    let l = &plan.limits;
    if l.memory.is_none() && l.pids.is_none() && l.cpus.is_none() {
        return Ok((None, Mechanism::Rlimit));
    }
    let accepted = plan.allow_missing.iter().any(|m| m == "cgroups");
    let support = cgroup::detect();
    cgroup::sweep_stale(&support);
    let name = format!("{}-{}", std::process::id(), unique());
    let watched = support.mechanism() != Mechanism::Rlimit;
    if watched {
        ensure_watcher()?;
        watcher_note(WATCH_MADE);
    }
    let made = Cgroup::create(&support, &name, l);
    if watched && matches!(made, Ok(None)) {
        watcher_note(WATCH_REMOVED); // none made (after an error, the watcher looks)
    }
    match made {
        Ok(Some(cg)) => Ok((Some(cg), support.mechanism())),
        Ok(None) if l.cpus.is_some() && !accepted => Err(SandboxError::Unavailable {
            layer: "cgroups",
            reason: "a cpus limit needs a writable cgroup (none here); policy [sandbox] allow_missing = [\"cgroups\"] accepts that".into(),
        }),
        Ok(None) => Ok((None, Mechanism::Rlimit)),
        Err(_) if accepted => Ok((None, Mechanism::Rlimit)),
        Err(e) => Err(SandboxError::Unavailable { layer: "cgroups", reason: e.to_string() }),
    }
}

fn unique() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
}

fn identity(plan: &Plan) -> Result<Identity, SandboxError> {
    let (euid, egid) = (geteuid().as_raw(), getegid().as_raw());
    if euid != 0 {
        return Ok(Identity { uid: euid, gid: egid, unprivileged: true, idmap: false });
    }
    let meta = std::fs::metadata(&plan.workspace)
        .map_err(SandboxError::host(format!("workspace {}", plan.workspace.display())))?;
    if meta.uid() != 0 {
        // Host root on someone's workspace: the sandbox acts as its owner.
        return Ok(Identity { uid: meta.uid(), gid: meta.gid(), unprivileged: false, idmap: false });
    }
    Ok(Identity { uid: ISOLATED_ID, gid: ISOLATED_ID, unprivileged: false, idmap: true })
}

fn write_maps(pid: Pid, id: &Identity) -> Result<(), SandboxError> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let write = |file: &str, data: String| {
        std::fs::write(proc.join(file), data).map_err(SandboxError::host(format!("write /proc/{pid}/{file}")))
    };
    if id.unprivileged {
        write("setgroups", "deny".into())?;
    }
    write("uid_map", format!("0 {} 1\n", id.uid))?;
    write("gid_map", format!("0 {} 1\n", id.gid))
}

/// The descriptors init's mount steps need, in the order of those steps:
/// for each bind marked `idmap`, an idmapped copy made with init's user
/// namespace (host root's files appear owned by the sandbox's root); for the
/// overlay, its upper and work directories; for each file bind marked
/// `tree`, a plain detached copy of the file.
fn op_fds(pid: Pid, ops: &[MountOp], plan: &Plan, id: &Identity) -> Result<Vec<OwnedFd>, SandboxError> {
    let mut fds = Vec::new();
    let mut userns = None;
    for op in ops {
        match op {
            MountOp::Bind { path, idmap: true, .. } => {
                if userns.is_none() {
                    let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                        .map_err(SandboxError::host("open init's user namespace"))?;
                    userns = Some(f);
                }
                if let Some(ns) = &userns {
                    fds.push(idmapped_tree(path, ns)?);
                }
            }
            MountOp::File { src, tree: true, .. } => {
                fds.push(
                    sys::open_tree_clone(src).map_err(SandboxError::host(format!("open_tree {}", src.display())))?,
                );
            }
            MountOp::Overlay { .. } => {
                let layers = plan
                    .review
                    .as_ref()
                    .ok_or(SandboxError::Plan(mountplan::PlanError::Review("an overlay without review directories")))?;
                fds.push(review_layers(&layers.dir, id)?);
            }
            _ => {}
        }
    }
    Ok(fds)
}

/// The overlay's layer directory (holding `upper/` and `work/`) as a
/// detached mount for init to attach and mount the overlay from: init
/// cannot reach the host path (the state directory is private), and the
/// overlay accepts layers only from mounts in its own namespace. The
/// directories become the sandbox root's on the host (the overlay writes
/// with init's credentials); a symlink or anything but a directory is refused.
fn review_layers(dir: &std::path::Path, id: &Identity) -> Result<OwnedFd, SandboxError> {
    use std::os::unix::fs::OpenOptionsExt;
    let what = |p: &std::path::Path| format!("review directory {}", p.display());
    for p in [dir.to_path_buf(), dir.join("upper"), dir.join("work")] {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
            .map_err(SandboxError::host(what(&p)))?;
        if !id.unprivileged {
            std::os::unix::fs::fchown(&f, Some(id.uid), Some(id.gid)).map_err(SandboxError::host(what(&p)))?;
        }
    }
    sys::open_tree_clone(dir).map_err(SandboxError::host(format!("open_tree {}", what(dir))))
}

/// An idmapped copy of the mount at `p`, mapped through `userns`.
fn idmapped_tree(p: &std::path::Path, userns: &std::fs::File) -> Result<OwnedFd, SandboxError> {
    let tree = sys::open_tree_clone(p).map_err(SandboxError::host(format!("open_tree {}", p.display())))?;
    sys::mount_setattr(tree.as_raw_fd(), std::path::Path::new(""), sys::MOUNT_ATTR_IDMAP, Some(userns.as_raw_fd()))
        .map_err(|e| SandboxError::Unavailable {
            layer: "idmapped mounts",
            reason: format!("{}: {e} (the sandbox cannot own root-owned files without them)", p.display()),
        })?;
    Ok(tree)
}

/// Write end of the watcher's pipe, held for the life of this process.
static WATCHER: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// Told to the watcher before a sandbox's cgroups are made (so it never
/// counts fewer than may exist).
const WATCH_MADE: u8 = b'+';
/// Told to the watcher once a sandbox's cgroups are removed.
const WATCH_REMOVED: u8 = b'-';

/// Tell the watcher that a sandbox's cgroups were made or removed. A lost
/// note only makes the watcher look for leftovers when it need not.
fn watcher_note(what: u8) {
    if let Some(w) = WATCHER.get() {
        let _ = nix::unistd::write(w, &[what]);
    }
}

/// Fork, once per supervisor process, a watcher that outlives us: when our
/// end of its pipe closes (we exited or were SIGKILLed) it removes every
/// cgroup we still own. Normal stops remove their own groups first and say
/// so ([`watcher_note`]): when every group made was removed, the watcher
/// exits without looking (no work after a clean exit).
fn ensure_watcher() -> Result<(), SandboxError> {
    if WATCHER.get().is_some() {
        return Ok(());
    }
    let owner = std::process::id() as i32;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::host("pipe")(e.into()))?;
    // SAFETY: the supervisor is single-threaded (documented on start()).
    match unsafe { fork() }.map_err(|e| SandboxError::host("fork watcher")(e.into()))? {
        ForkResult::Child => {
            drop(w);
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
                }
            }
            let _ = sys::close_all_except(r.as_raw_fd());
            let mut buf = [0u8; 64];
            // Sandboxes whose groups may still exist.
            let mut live: i64 = 0;
            // Returns on EOF: the supervisor is gone. A read error counts
            // as groups left behind.
            loop {
                match nix::unistd::read(r.as_raw_fd(), &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for b in &buf[..n] {
                            live += match *b {
                                WATCH_MADE => 1,
                                WATCH_REMOVED => -1,
                                _ => 0,
                            };
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => {
                        live = i64::MAX;
                        break;
                    }
                }
            }
            if live > 0 {
                cgroup::remove_owned_by(&cgroup::detect(), owner);
            }
            sys::exit_now(0)
        }
        ForkResult::Parent { .. } => {
            let _ = WATCHER.set(w);
            Ok(())
        }
    }
}
