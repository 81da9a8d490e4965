//! The sandbox helper protocol and its client.
//!
//! A multithreaded program (`clawcage agent`, `serve`) must never fork a
//! sandbox itself. It starts a helper instead: a fresh, single-threaded
//! process (the `clawcage` binary run as `clawcage __sandbox-helper`) that
//! gets a unix `SOCK_SEQPACKET` socket on fd 3. Over it the client sends
//! [`HelperRequest::Start`] with the plan; the helper runs
//! [`clawcage_sandbox::Sandbox::start`] and answers [`HelperReply::Ready`]. Each
//! [`HelperRequest::Exec`] carries the command's stdin, stdout and stderr as
//! three descriptors (`SCM_RIGHTS`); the helper relays them through the
//! sandbox and answers [`HelperReply::Done`] once it has closed its copies.
//! The helper stops the sandbox on [`HelperRequest::Stop`], on end of file
//! (the client is gone), or dies with its parent (`PR_SET_PDEATHSIG`), and
//! the sandbox's init dies with the helper: no sandbox outlives its client.
//!
//! This module holds the messages and the blocking [`Client`]; the server
//! loop is [`super::serve`]. Both run on the host, outside any sandbox, so
//! neither is part of the enforcement core (policy, sandbox, egress).

use clawcage_policy::Plan;
use clawcage_sandbox::proto;
use clawcage_sandbox::{Collected, ExecSpec, Outcome};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The descriptor the helper finds its control socket on.
pub const HELPER_FD: i32 = 3;

/// Client → helper.
#[derive(Debug, Serialize, Deserialize)]
pub enum HelperRequest {
    /// Start the sandbox (first message, exactly once).
    Start {
        /// The plan to carry out.
        plan: Box<Plan>,
        /// Mount a private devpts (commands may get a pty).
        tty: bool,
        /// For plans with network: what the helper needs to serve the egress
        /// proxy on the listener the sandbox hands out.
        #[serde(default)]
        egress: Option<EgressStart>,
    },
    /// Run one command. Descriptors: stdin, stdout, stderr.
    Exec(WireExec),
    /// Start a background command ([`clawcage_sandbox::Sandbox::spawn`]) whose stdio
    /// are the three descriptors sent (not relayed). Replies
    /// [`HelperReply::Spawned`] or [`HelperReply::SpawnFailed`].
    Spawn(WireExec),
    /// Stop the sandbox and exit.
    Stop,
}

/// What the helper's egress proxy needs. Secret values never travel: the
/// helper reads them itself (from its environment or files, as the policy
/// says), so they live only in the helper process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EgressStart {
    /// The effective policy as canonical TOML (`Policy::to_toml`).
    pub policy_toml: String,
    /// How to name the policy in the proxy's refusals ("add a rule to ...").
    pub policy_name: String,
    /// The sandbox id in egress records (the task id).
    pub sandbox: String,
    /// The state directory (audit log, the installation's CA).
    pub state_dir: std::path::PathBuf,
}

/// One command, as it travels to the helper.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireExec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Complete environment; `None`: the plan's.
    pub env: Option<Vec<(String, String)>>,
    /// Working directory inside; `None`: the workspace.
    pub cwd: Option<String>,
    /// Wall-clock limit in milliseconds; `None`: the plan's.
    pub timeout_ms: Option<u64>,
    /// stdout+stderr byte limit; `None`: the plan's.
    pub output_limit: Option<u64>,
}

impl WireExec {
    /// The wire form of `spec` (a tty cannot travel: it is refused earlier).
    pub fn from_spec(spec: &ExecSpec) -> WireExec {
        WireExec {
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.as_ref().map(|p| p.to_string_lossy().into_owned()),
            timeout_ms: spec.timeout.map(|d| d.as_millis().min(u64::MAX as u128) as u64),
            output_limit: spec.output_limit,
        }
    }

    /// The spec the helper hands to [`clawcage_sandbox::Sandbox::exec`].
    pub fn to_spec(&self) -> ExecSpec {
        ExecSpec {
            argv: self.argv.clone(),
            env: self.env.clone(),
            cwd: self.cwd.as_ref().map(Into::into),
            timeout: self.timeout_ms.map(Duration::from_millis),
            output_limit: self.output_limit,
            tty: None,
        }
    }
}

/// Helper → client.
#[derive(Debug, Serialize, Deserialize)]
pub enum HelperReply {
    /// The sandbox runs; `limits` says how its limits are enforced.
    Ready {
        /// The limits mechanism (`cgroup v1`, `rlimits`, ...).
        limits: String,
    },
    /// The sandbox could not be started (the message says which layer and why).
    StartFailed {
        /// One line.
        error: String,
    },
    /// A command ended; the helper closed its copies of the stdio descriptors.
    Done {
        /// How it ended.
        outcome: Outcome,
        /// Bytes delivered to stdout.
        stdout_bytes: u64,
        /// Bytes delivered to stderr.
        stderr_bytes: u64,
    },
    /// The request could not be carried out; the sandbox is gone or unusable.
    Error {
        /// One line.
        error: String,
    },
    /// A background command runs, as command `id`.
    Spawned {
        /// Its command id.
        id: u64,
    },
    /// A background command could not be started (the sandbox still runs).
    SpawnFailed {
        /// One line.
        error: String,
    },
    /// The sandbox is stopped; the helper exits.
    Stopped,
}

/// Why talking to the helper failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The helper process could not be started.
    #[error("cannot start the sandbox helper {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The helper refused to start the sandbox.
    #[error("{0}")]
    Start(String),
    /// The helper reported an error, broke the protocol or died.
    #[error("sandbox helper: {0}")]
    Gone(String),
    /// A local step (pipes, memfd) failed.
    #[error("{step}: {source}")]
    Local {
        /// What was being done.
        step: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

fn local(step: &'static str) -> impl FnOnce(Errno) -> HelperError {
    move |e| HelperError::Local { step, source: e.into() }
}

/// A background command's pipe ends ([`Client::spawn_background`]).
#[derive(Debug)]
pub struct Background {
    /// Its command id in the sandbox.
    pub id: u64,
    /// Write end of its stdin (closing it is its end of file).
    pub stdin: OwnedFd,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
}

/// The client side of one helper (one sandbox). Blocking; async callers use
/// `spawn_blocking`. Dropping it kills the helper, and with it the sandbox.
pub struct Client {
    ctl: OwnedFd,
    child: Child,
    limits: String,
    done: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("pid", &self.child.id()).field("limits", &self.limits).finish()
    }
}

impl Client {
    /// Start `program args...` as the helper, hand it `plan`, and wait until
    /// the sandbox runs (or the helper says why it cannot).
    ///
    /// The helper dies when the *thread* that calls this exits (that is how
    /// `PR_SET_PDEATHSIG` counts parents): call it from a thread that lives
    /// as long as the sandbox should, such as the main thread.
    pub fn spawn(program: &Path, args: &[&str], plan: &Plan, tty: bool) -> Result<Client, HelperError> {
        Client::spawn_with(program, args, plan, tty, None)
    }

    /// Like [`Client::spawn`], with the egress proxy's configuration for a
    /// plan with network.
    pub fn spawn_with(
        program: &Path,
        args: &[&str],
        plan: &Plan,
        tty: bool,
        egress: Option<EgressStart>,
    ) -> Result<Client, HelperError> {
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(local("socketpair"))?;
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        // Its own process group: a Ctrl-C at the terminal goes to the client,
        // which decides how to stop; the helper never sees it.
        cmd.process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only async-signal-safe functions (dup2, fcntl, prctl) on
        // descriptors and flags; it allocates nothing and takes no locks.
        unsafe {
            cmd.pre_exec(move || {
                if fd == HELPER_FD {
                    // dup2 onto itself keeps CLOEXEC: clear it instead.
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, HELPER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child =
            cmd.spawn().map_err(|source| HelperError::Spawn { program: program.display().to_string(), source })?;
        drop(theirs);
        let mut client = Client { ctl: ours, child, limits: String::new(), done: false };
        client.send(&HelperRequest::Start { plan: Box::new(plan.clone()), tty, egress }, &[])?;
        match client.recv()? {
            HelperReply::Ready { limits } => {
                client.limits = limits;
                Ok(client)
            }
            HelperReply::StartFailed { error } => Err(HelperError::Start(error)),
            other => Err(HelperError::Gone(format!("unexpected reply to start: {other:?}"))),
        }
    }

    /// The helper's process id (SIGKILL to it takes the sandbox down).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the sandbox's limits are enforced.
    pub fn limits_mechanism(&self) -> &str {
        &self.limits
    }

    fn send(&self, req: &HelperRequest, fds: &[i32]) -> Result<(), HelperError> {
        proto::send(self.ctl.as_fd(), req, fds).map_err(|e| HelperError::Gone(format!("send: {e}")))
    }

    fn recv(&self) -> Result<HelperReply, HelperError> {
        match proto::recv::<HelperReply>(self.ctl.as_fd()) {
            Ok(Some((reply, _))) => Ok(reply),
            Ok(None) => Err(HelperError::Gone("the helper exited".into())),
            Err(e) => Err(HelperError::Gone(format!("receive: {e}"))),
        }
    }

    /// `reply`, unless it is [`HelperReply::Error`]: then the sandbox is gone
    /// or unusable, and so is this client.
    fn unless_error(&mut self, reply: HelperReply) -> Result<HelperReply, HelperError> {
        match reply {
            HelperReply::Error { error } => {
                self.done = true;
                Err(HelperError::Gone(error))
            }
            other => Ok(other),
        }
    }

    /// Run one command with `stdin` as its input and collect its output
    /// (bounded by the command's output limit, which the sandbox enforces).
    pub fn exec_collect(&mut self, spec: &ExecSpec, stdin: &[u8]) -> Result<Collected, HelperError> {
        if spec.tty.is_some() {
            return Err(HelperError::Gone("a tty cannot be passed through the helper".into()));
        }
        let input = stdin_fd(stdin)?;
        let ((out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?);
        self.send(
            &HelperRequest::Exec(WireExec::from_spec(spec)),
            &[input.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        )?;
        // Only the helper's copies remain: end of file comes when it is done.
        drop((input, out_w, err_w));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let reply = self.collect(out_r.as_fd(), err_r.as_fd(), &mut stdout, &mut stderr)?;
        match self.unless_error(reply)? {
            HelperReply::Done { outcome, .. } => Ok(Collected { outcome, stdout, stderr }),
            other => Err(HelperError::Gone(format!("unexpected reply to exec: {other:?}"))),
        }
    }

    /// Read both pipes to their end and take the reply.
    fn collect(
        &self,
        out: BorrowedFd<'_>,
        err: BorrowedFd<'_>,
        stdout: &mut Vec<u8>,
        stderr: &mut Vec<u8>,
    ) -> Result<HelperReply, HelperError> {
        let mut open = [true, true];
        let mut reply = None;
        let mut buf = vec![0u8; 64 * 1024];
        while open[0] || open[1] || reply.is_none() {
            let mut fds = Vec::with_capacity(3);
            let mut which = Vec::with_capacity(3);
            for (i, fd) in [out, err].into_iter().enumerate() {
                if open[i] {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    which.push(i);
                }
            }
            if reply.is_none() {
                fds.push(PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN));
                which.push(2);
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(local("poll")(e)),
            }
            let ready: Vec<usize> = fds
                .iter()
                .zip(&which)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, w)| *w)
                .collect();
            drop(fds);
            for w in ready {
                if w == 2 {
                    reply = Some(self.recv()?);
                    continue;
                }
                let (fd, sink) = if w == 0 { (out, &mut *stdout) } else { (err, &mut *stderr) };
                match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                    Ok(0) => open[w] = false,
                    Ok(n) => sink.extend_from_slice(&buf[..n]),
                    Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(local("read output")(e)),
                }
            }
        }
        reply.ok_or_else(|| HelperError::Gone("no reply".into()))
    }

    /// Start a long-lived command in the background (an MCP server): it runs
    /// inside the sandbox under the same layers as every command, beside the
    /// later [`Client::exec_collect`]s, with its stdio connected straight to
    /// the returned pipe ends. It ends when it exits or the sandbox stops.
    pub fn spawn_background(&mut self, spec: &ExecSpec) -> Result<Background, HelperError> {
        let ((in_r, in_w), (out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?, pipe()?);
        self.send(
            &HelperRequest::Spawn(WireExec::from_spec(spec)),
            &[in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        )?;
        drop((in_r, out_w, err_w));
        let reply = self.recv()?;
        match self.unless_error(reply)? {
            HelperReply::Spawned { id } => Ok(Background { id, stdin: in_w, stdout: out_r, stderr: err_r }),
            HelperReply::SpawnFailed { error } => Err(HelperError::Start(error)),
            other => Err(HelperError::Gone(format!("unexpected reply to spawn: {other:?}"))),
        }
    }

    /// Stop the sandbox and wait for the helper to exit.
    pub fn stop(mut self) -> Result<(), HelperError> {
        self.send(&HelperRequest::Stop, &[])?;
        let reply = self.recv();
        self.done = true;
        let _ = self.child.wait();
        match reply? {
            HelperReply::Stopped => Ok(()),
            HelperReply::Error { error } => Err(HelperError::Gone(error)),
            other => Err(HelperError::Gone(format!("unexpected reply to stop: {other:?}"))),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.done {
            // Killing the helper kills the sandbox's init (its PDEATHSIG).
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), HelperError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(local("pipe"))
}

/// A descriptor that reads as `bytes` then end of file: a memfd
/// (no pipe buffer to fill, so no writer thread is needed).
fn stdin_fd(bytes: &[u8]) -> Result<OwnedFd, HelperError> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let fd = memfd_create(c"clawcage-stdin", MemFdCreateFlag::MFD_CLOEXEC).map_err(local("memfd_create"))?;
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(&fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(local("write stdin")(e)),
        }
    }
    nix::unistd::lseek(fd.as_raw_fd(), 0, nix::unistd::Whence::SeekSet).map_err(local("lseek stdin"))?;
    Ok(fd)
}
