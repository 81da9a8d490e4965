//! The untouched CONNECT tunnel: bytes move between the client's socket and
//! the host's socket with splice(2) through a pipe per direction, so they
//! never enter this process's memory (both ends are TCP sockets). Bytes are
//! counted per splice call, not per byte, and the per-sandbox budget is
//! checked before every call.

use crate::io::{Budget, Counters};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Bytes asked of one splice call (the pipe is made this large when the
/// kernel allows; it takes what fits).
const CHUNK: usize = 1 << 20;

/// Both directions of one tunnel.
pub struct Tunnel {
    /// The sandbox's side.
    pub client: TcpStream,
    /// Bytes the client sent before the tunnel started (already read by the
    /// HTTP layer); they go to the host first.
    pub early: bytes::Bytes,
    /// The host's side.
    pub host: TcpStream,
    /// Read (from the host) and written (to the host) counts for the record.
    pub counters: Arc<Counters>,
    /// The sandbox's byte budget, if any.
    pub budget: Option<Arc<Budget>>,
}

impl Tunnel {
    /// Move bytes both ways until both sides are done or either fails.
    pub async fn run(mut self) -> io::Result<()> {
        if !self.early.is_empty() {
            take(&self.budget, self.early.len())?;
            self.host.write_all(&self.early).await?;
            self.counters.written.fetch_add(self.early.len() as u64, Ordering::Relaxed);
        }
        let (c, h) = (&self.client, &self.host);
        let up = pump(c, h, &self.counters.written, &self.budget);
        let down = pump(h, c, &self.counters.read, &self.budget);
        tokio::try_join!(up, down).map(|_| ())
    }
}

fn over_budget() -> io::Error {
    io::Error::other("clawcage: [network] max_bytes reached")
}

fn take(budget: &Option<Arc<Budget>>, n: usize) -> io::Result<()> {
    match budget {
        Some(b) if !b.take(n) => Err(over_budget()),
        _ => Ok(()),
    }
}

/// A pipe (read end, write end), non-blocking, close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own; flags are valid.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made by pipe2 and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own; a refusal only leaves the default size.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    Ok((r, w))
}

/// splice(2) without offsets (sockets and pipes have none).
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the duration of the call; null
    // offsets are what splice takes for pipes and sockets.
    let n = unsafe { libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One direction: `from` → pipe → `to`, until `from` ends (then `to` is
/// shut for writing, so the other side sees the end too).
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    count: &std::sync::atomic::AtomicU64,
    budget: &Option<Arc<Budget>>,
) -> io::Result<()> {
    let (pr, pw) = pipe()?;
    loop {
        // No more than one byte past the budget (that byte trips it).
        let want = match budget.as_ref().and_then(|b| b.remaining()) {
            Some(left) => CHUNK.min(usize::try_from(left.saturating_add(1)).unwrap_or(CHUNK)),
            None => CHUNK,
        };
        let mut queued = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || splice(from.as_raw_fd(), pw.as_raw_fd(), want)) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if queued == 0 {
            // SAFETY: shutdown on a socket we hold open; a failure means it is already gone.
            unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
            return Ok(());
        }
        while queued > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || splice(pr.as_raw_fd(), to.as_raw_fd(), queued)) {
                Ok(n) => {
                    queued -= n;
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    take(budget, n)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
