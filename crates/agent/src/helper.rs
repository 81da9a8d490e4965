//! The sandbox helper's server loop (`clawcage __sandbox-helper`): the
//! process that owns one task's sandbox. The protocol and the client are in
//! [`clawcage_sandbox::helper`]; this side lives above the core because it
//! also runs the egress proxy for policies with network.
//!
//! The helper is single-threaded until the sandbox runs (`Sandbox::start`
//! forks), and dies with its parent.

use clawcage_sandbox::helper::{HelperReply, HelperRequest, HELPER_FD};
use clawcage_sandbox::proto;
use clawcage_sandbox::{Input, Options, Sandbox, Sink};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

/// Why the helper could not serve.
#[derive(Debug, thiserror::Error)]
pub enum HelperServeError {
    /// fd 3 is not the control socket (the helper was started by hand).
    #[error("fd {HELPER_FD} is not a socket: the sandbox helper is started by clawcage itself, not by hand")]
    NoSocket,
    /// The control socket failed.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Serve one sandbox on fd 3 until told to stop or the client goes away.
pub fn serve() -> Result<(), HelperServeError> {
    let ctl = take_control_socket()?;
    // Die with the parent (the client also set this before exec; set it
    // again in case we were exec'd by something else), and exit if it is
    // already gone.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let fd = ctl.as_fd();
    let (plan, tty) = match proto::recv::<HelperRequest>(fd)? {
        Some((HelperRequest::Start { plan, tty }, _)) => (plan, tty),
        Some((other, _)) => return Err(HelperServeError::Protocol(format!("expected Start, got {other:?}"))),
        None => return Ok(()),
    };
    let mut sandbox = match Sandbox::start(&plan, &Options { tty }) {
        Ok(sb) => sb,
        Err(e) => {
            proto::send(fd, &HelperReply::StartFailed { error: e.to_string() }, &[])?;
            return Ok(());
        }
    };
    proto::send(fd, &HelperReply::Ready { limits: sandbox.limits_mechanism().to_string() }, &[])?;
    loop {
        match proto::recv::<HelperRequest>(fd)? {
            Some((HelperRequest::Exec(wire), fds)) => {
                let reply = exec(&mut sandbox, &wire.to_spec(), fds);
                let fatal = matches!(reply, HelperReply::Error { .. });
                proto::send(fd, &reply, &[])?;
                if fatal {
                    return Ok(());
                }
            }
            Some((HelperRequest::Stop, _)) => {
                let reply = match sandbox.stop() {
                    Ok(()) => HelperReply::Stopped,
                    Err(e) => HelperReply::Error { error: format!("stop: {e}") },
                };
                proto::send(fd, &reply, &[])?;
                return Ok(());
            }
            Some((HelperRequest::Start { .. }, _)) => {
                proto::send(fd, &HelperReply::Error { error: "the sandbox is already started".into() }, &[])?;
            }
            // The client is gone: dropping the sandbox stops it.
            None => return Ok(()),
        }
    }
}

/// Run one command with the three descriptors the client sent; they are
/// closed before the reply goes out, so the client sees end of file first.
fn exec(sandbox: &mut Sandbox, spec: &clawcage_sandbox::ExecSpec, fds: Vec<OwnedFd>) -> HelperReply {
    let [stdin, stdout, stderr]: [OwnedFd; 3] = match fds.try_into() {
        Ok(a) => a,
        Err(v) => return HelperReply::Error { error: format!("exec needs 3 descriptors, got {}", v.len()) },
    };
    let result = sandbox.exec(
        spec,
        Input::Fd(stdin.as_fd()),
        Sink::Fd(stdout.as_fd()),
        Sink::Fd(stderr.as_fd()),
        None::<BorrowedFd<'_>>,
    );
    drop((stdin, stdout, stderr));
    match result {
        Ok(outcome) => {
            let (o, e) = sandbox.last_output_bytes();
            HelperReply::Done { outcome, stdout_bytes: o, stderr_bytes: e }
        }
        Err(e) => HelperReply::Error { error: e.to_string() },
    }
}

fn take_control_socket() -> Result<OwnedFd, HelperServeError> {
    let st = nix::sys::stat::fstat(HELPER_FD).map_err(|_| HelperServeError::NoSocket)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(HelperServeError::NoSocket);
    }
    // SAFETY: fd 3 is open (fstat succeeded) and is the socket the client
    // placed there for us; nothing else in this fresh process owns it.
    let ctl = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    nix::fcntl::fcntl(HELPER_FD, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
        .map_err(|e| HelperServeError::Io(e.into()))?;
    Ok(ctl)
}
