//! The exec protocol between the supervisor (host side) and the sandbox's
//! init (pid 1 inside). One JSON message per `SOCK_SEQPACKET` packet; file
//! descriptors travel beside it as `SCM_RIGHTS`.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Largest message (a long argv or environment); larger requests are refused.
pub const MAX_MESSAGE: usize = 192 * 1024;

/// Supervisor → init.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Run a command. Fds: stdin, stdout, stderr (or none when `tty`: init
    /// opens a pty and sends its master back with [`Reply::Started`]).
    Exec {
        /// Caller-chosen id echoed in replies.
        id: u64,
        /// Program and arguments; `argv[0]` is looked up in `PATH` of `env`.
        argv: Vec<String>,
        /// Complete environment.
        env: Vec<(String, String)>,
        /// Working directory inside the sandbox.
        cwd: String,
        /// Give the command a new pty as controlling terminal, with this size.
        tty: Option<(u16, u16)>,
    },
    /// Send `signal` to the process group of command `id`.
    Signal {
        /// Command id.
        id: u64,
        /// Signal number.
        signal: i32,
    },
    /// Resize the pty of command `id`.
    Resize {
        /// Command id.
        id: u64,
        /// Rows and columns.
        size: (u16, u16),
    },
}

/// Init → supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Setup finished: every layer applied and checked from inside.
    Ready,
    /// Setup failed at `step`.
    SetupFailed {
        /// The setup step (e.g. "pivot_root").
        step: String,
        /// What went wrong, with the path involved.
        detail: String,
    },
    /// The command runs (fd: the pty master when a tty was requested).
    Started {
        /// Command id.
        id: u64,
    },
    /// The command could not be started (`errno` of execve or of the setup).
    Failed {
        /// Command id.
        id: u64,
        /// errno value.
        errno: i32,
        /// Human-readable reason.
        detail: String,
    },
    /// The command ended; `status` is the raw wait status.
    Exited {
        /// Command id.
        id: u64,
        /// Raw `wait(2)` status.
        status: i32,
    },
}

/// Send one message with optional descriptors.
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> io::Result<()> {
    let buf = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if buf.len() > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("request of {} bytes exceeds the {MAX_MESSAGE}-byte limit", buf.len()),
        ));
    }
    let iov = [IoSlice::new(&buf)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(drop).map_err(io::Error::from),
        }
    }
}

/// Receive one message and its descriptors. `Ok(None)` on end of stream.
pub fn recv<T: for<'de> Deserialize<'de>>(sock: BorrowedFd<'_>) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    // Peek at the packet's real size first (MSG_TRUNC reports it for
    // SEQPACKET) so that small replies do not cost a large zeroed buffer.
    let size = loop {
        let mut probe = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut probe)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => break msg.bytes,
        }
    };
    if size == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; size.min(MAX_MESSAGE)];
    let mut space = nix::cmsg_space!([RawFd; 16]);
    let (len, fds, truncated) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors
                        // in our table for us; nothing else owns them.
                        fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                let truncated = msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                break (msg.bytes, fds, truncated);
            }
        }
    };
    if len == 0 {
        return Ok(None);
    }
    if truncated {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated message"));
    }
    let msg = serde_json::from_slice(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((msg, fds)))
}
