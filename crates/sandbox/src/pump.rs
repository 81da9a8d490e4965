//! Moving a command's stdio between the caller and the sandbox, with the
//! wall-clock and output limits, in one poll loop on the supervisor side.

use crate::proto::{self, Reply, Request};
use crate::{sys, SandboxError};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set while someone is being asked a question on the terminal the
/// command's stdin comes from (an approval in the middle of a run).
static STDIN_HELD: AtomicBool = AtomicBool::new(false);

/// While `held`, no [`Input::Fd`] source is read: what is typed stays on
/// the terminal for the one asking (checked at least every 50 ms).
pub fn hold_stdin(held: bool) {
    STDIN_HELD.store(held, Ordering::SeqCst);
}

/// Where a command's stdin comes from.
pub enum Input<'a> {
    /// Nothing (immediate end of file).
    Null,
    /// These bytes, then end of file.
    Bytes(&'a [u8]),
    /// Relay from this descriptor until it ends.
    Fd(BorrowedFd<'a>),
}

/// Where a command's stdout or stderr goes.
pub enum Sink<'a> {
    /// Discard.
    Null,
    /// Append to this buffer.
    Buffer(&'a mut Vec<u8>),
    /// Write to this descriptor.
    Fd(BorrowedFd<'a>),
}

/// The three pipes of a command without a tty.
pub(crate) struct Pipes {
    child: Vec<OwnedFd>,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

impl Pipes {
    pub(crate) fn new() -> std::io::Result<Pipes> {
        let flags = OFlag::O_CLOEXEC;
        let (in_r, in_w) = nix::unistd::pipe2(flags)?;
        let (out_r, out_w) = nix::unistd::pipe2(flags)?;
        let (err_r, err_w) = nix::unistd::pipe2(flags)?;
        for fd in [&in_w, &out_r, &err_r] {
            set_nonblocking(fd.as_raw_fd())?;
        }
        Ok(Pipes { child: vec![in_r, out_w, err_w], stdin: in_w, stdout: out_r, stderr: err_r })
    }

    /// The ends handed to the command: stdin (read), stdout and stderr (write).
    pub(crate) fn child_ends(&self) -> Vec<RawFd> {
        self.child.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// After sending them, our copies must go so that end-of-file works.
    pub(crate) fn close_child_ends(&mut self) {
        self.child.clear();
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Limits applied while pumping.
pub(crate) struct Limits {
    pub timeout: Option<Duration>,
    pub output: Option<u64>,
}

/// How pumping ended.
pub(crate) enum End {
    Status(i32),
    TimedOut,
    OutputLimit,
}

struct Out<'f> {
    fd: BorrowedFd<'f>,
    /// 0: stdout sink, 1: stderr sink.
    sink: usize,
    open: bool,
}

/// Relay until the command exits. `master` replaces the pipes for a tty.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<'s>(
    ctl: BorrowedFd<'_>,
    id: u64,
    pipes: Option<Pipes>,
    master: Option<OwnedFd>,
    stdin: Input<'_>,
    mut stdout: Sink<'s>,
    mut stderr: Sink<'s>,
    signals: Option<BorrowedFd<'_>>,
    limits: &Limits,
) -> Result<(End, [u64; 2]), SandboxError> {
    if let Some(m) = &master {
        set_nonblocking(m.as_raw_fd()).map_err(SandboxError::host("pty"))?;
    }
    // Our end of the command's stdin (dropping it is the end of file), and
    // the descriptors its output arrives on.
    let (mut stdin_pipe, out_owned) = match pipes {
        Some(p) => (Some(p.stdin), vec![p.stdout, p.stderr]),
        None => (None, vec![]),
    };
    let mut tty_in = master.is_some();
    let outs_fds: Vec<BorrowedFd<'_>> = match &master {
        Some(m) => vec![m.as_fd()],
        None => out_owned.iter().map(|f| f.as_fd()).collect(),
    };
    let mut outs: Vec<Out<'_>> =
        outs_fds.into_iter().enumerate().map(|(sink, fd)| Out { fd, sink, open: true }).collect();
    let mut sinks: [&mut Sink<'s>; 2] = [&mut stdout, &mut stderr];
    let (mut pending, mut src): (Vec<u8>, Option<BorrowedFd<'_>>) = match stdin {
        Input::Null => (Vec::new(), None),
        Input::Bytes(b) => (b.to_vec(), None),
        Input::Fd(fd) => (Vec::new(), Some(fd)),
    };
    let mut sent = 0usize;
    let mut budget = Budget { ctl, id, written: 0, per_sink: [0; 2], limit: limits.output, end: None };
    let mut deadline = limits.timeout.map(|t| Instant::now() + t);
    let mut status: Option<i32> = None;
    let mut buf = vec![0u8; 64 * 1024];

    while status.is_none() {
        // Close stdin once everything was delivered and the source is done.
        if src.is_none() && sent >= pending.len() {
            stdin_pipe = None;
        }
        let in_dst: Option<BorrowedFd<'_>> = match (&stdin_pipe, &master) {
            (Some(p), _) => Some(p.as_fd()),
            (None, Some(m)) if tty_in => Some(m.as_fd()),
            _ => None,
        };
        let mut fds: Vec<PollFd<'_>> = vec![PollFd::new(ctl, PollFlags::POLLIN)];
        let held = STDIN_HELD.load(Ordering::SeqCst);
        let src_idx = match (src, sent >= pending.len() && !held) {
            (Some(s), true) => Some(push(&mut fds, s, PollFlags::POLLIN)),
            _ => None,
        };
        let dst_idx = match (in_dst, sent < pending.len()) {
            (Some(d), true) => Some(push(&mut fds, d, PollFlags::POLLOUT)),
            _ => None,
        };
        let out_idx: Vec<Option<usize>> =
            outs.iter().map(|o| o.open.then(|| push(&mut fds, o.fd, PollFlags::POLLIN))).collect();
        let sig_idx = signals.map(|s| push(&mut fds, s, PollFlags::POLLIN));
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        // Held: look again soon, to resume reading once the question is answered.
        let timeout = match (held && src.is_some(), timeout) {
            (true, PollTimeout::NONE) => PollTimeout::from(50u8),
            (true, t) => t.min(PollTimeout::from(50u8)),
            (false, t) => t,
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SandboxError::host("poll")(e.into())),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);

        if deadline.is_some_and(|d| Instant::now() >= d) && budget.end.is_none() {
            deadline = None;
            budget.end = Some(End::TimedOut);
            kill_command(ctl, id)?;
        }
        if let Some(s) = src.filter(|_| src_idx.is_some_and(|i| ready[i]) && !STDIN_HELD.load(Ordering::SeqCst)) {
            match nix::unistd::read(s.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => src = None,
                Ok(n) => {
                    pending = buf[..n].to_vec();
                    sent = 0;
                }
            }
        }
        if let (Some(i), Some(d)) = (dst_idx, in_dst) {
            if ready[i] {
                match nix::unistd::write(d, &pending[sent..]) {
                    Ok(n) => sent += n,
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(_) => {
                        // The command closed its stdin: stop feeding it.
                        stdin_pipe = None;
                        tty_in = false;
                        src = None;
                        sent = pending.len();
                    }
                }
            }
        }
        for (o, idx) in outs.iter_mut().zip(&out_idx) {
            if idx.is_some_and(|i| ready[i]) {
                pump_out(o, &mut sinks, &mut buf, &mut budget)?;
            }
        }
        if let Some(s) = signals.filter(|_| sig_idx.is_some_and(|i| ready[i])) {
            forward_signal(s, ctl, id, master.as_ref().map(|m| m.as_raw_fd()))?;
        }
        if ready[0] {
            match proto::recv::<Reply>(ctl) {
                Ok(Some((Reply::Exited { id: rid, status: st }, _))) if rid == id => status = Some(st),
                Ok(Some(_)) => {}
                Ok(None) => return Err(SandboxError::Gone("init exited".into())),
                Err(e) => return Err(SandboxError::Gone(e.to_string())),
            }
        }
    }
    // The command is gone: take what it left in the pipes, without waiting
    // for background processes that may still hold them.
    for o in outs.iter_mut() {
        while o.open {
            let before = budget.written;
            pump_out(o, &mut sinks, &mut buf, &mut budget)?;
            if budget.written == before {
                break;
            }
        }
    }
    let end = match budget.end {
        Some(e) => e,
        None => End::Status(status.unwrap_or(0)),
    };
    Ok((end, budget.per_sink))
}

fn push<'a>(fds: &mut Vec<PollFd<'a>>, fd: BorrowedFd<'a>, ev: PollFlags) -> usize {
    fds.push(PollFd::new(fd, ev));
    fds.len() - 1
}

fn kill_command(ctl: BorrowedFd<'_>, id: u64) -> Result<(), SandboxError> {
    proto::send(ctl, &Request::Signal { id, signal: libc::SIGKILL }, &[]).map_err(|e| SandboxError::Gone(e.to_string()))
}

/// Output accounting shared by stdout and stderr.
struct Budget<'c> {
    ctl: BorrowedFd<'c>,
    id: u64,
    written: u64,
    /// Bytes delivered to the stdout and the stderr sink.
    per_sink: [u64; 2],
    limit: Option<u64>,
    end: Option<End>,
}

/// Read once from an output and deliver it, enforcing the output limit.
fn pump_out(
    o: &mut Out<'_>,
    sinks: &mut [&mut Sink<'_>; 2],
    buf: &mut [u8],
    b: &mut Budget<'_>,
) -> Result<(), SandboxError> {
    let n = match nix::unistd::read(o.fd.as_raw_fd(), buf) {
        Ok(0) => {
            o.open = false;
            return Ok(());
        }
        Ok(n) => n,
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(()),
        Err(_) => {
            // EIO on a pty master: the command's side is closed.
            o.open = false;
            return Ok(());
        }
    };
    let mut chunk = &buf[..n];
    if let Some(limit) = b.limit {
        let room = limit.saturating_sub(b.written) as usize;
        if chunk.len() > room {
            chunk = &chunk[..room];
            if b.end.is_none() {
                b.end = Some(End::OutputLimit);
                kill_command(b.ctl, b.id)?;
            }
            o.open = false;
        }
    }
    b.written += chunk.len() as u64;
    b.per_sink[o.sink] += chunk.len() as u64;
    match &mut *sinks[o.sink] {
        Sink::Null => {}
        Sink::Buffer(b) => b.extend_from_slice(chunk),
        Sink::Fd(fd) => write_all(*fd, chunk).map_err(SandboxError::host("write output"))?,
    }
    Ok(())
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut p, PollTimeout::NONE);
            }
            // The reader went away (e.g. `| head`): discard, as a pipe would.
            Err(Errno::EPIPE) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Read one signal from the signalfd and pass it on: SIGWINCH resizes the
/// pty, everything else goes to the command's process group.
fn forward_signal(
    sigfd: BorrowedFd<'_>,
    ctl: BorrowedFd<'_>,
    id: u64,
    master: Option<RawFd>,
) -> Result<(), SandboxError> {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    let Ok(n) = nix::unistd::read(sigfd.as_raw_fd(), &mut info) else { return Ok(()) };
    if n < 4 {
        return Ok(());
    }
    let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
    if signo == libc::SIGWINCH {
        if let (Some(m), Ok(ws)) = (master, sys::get_winsize(libc::STDIN_FILENO)) {
            let _ = sys::set_winsize(m, &ws);
        }
        return Ok(());
    }
    proto::send(ctl, &Request::Signal { id, signal: signo }, &[]).map_err(|e| SandboxError::Gone(e.to_string()))
}
