//! The sandbox helper (`clawcage __sandbox-helper`): the process that owns
//! one task's sandbox, and its protocol and client ([`client`]). It lives
//! above the core because it also runs the egress proxy for policies with
//! network.
//!
//! The helper is single-threaded until the sandbox runs (`Sandbox::start`
//! forks), and dies with its parent.

pub mod client;

use clawcage_sandbox::proto;
use clawcage_sandbox::{Input, Options, Sandbox, Sink};
pub use client::{Background, Client, EgressStart, HelperError, HelperReply, HelperRequest, HELPER_FD};
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
    let (mut plan, tty, egress) = match proto::recv::<HelperRequest>(fd)? {
        Some((HelperRequest::Start { plan, tty, egress }, _)) => (plan, tty, egress),
        Some((other, _)) => return Err(HelperServeError::Protocol(format!("expected Start, got {other:?}"))),
        None => return Ok(()),
    };
    // The egress side first: the CA bundle and secret placeholders go into
    // the plan before the sandbox exists.
    let prepared = match (&plan.network, egress) {
        (None, _) => None,
        (Some(_), None) => {
            let error = "the plan has network but no egress configuration: refusing (nothing would serve it)";
            proto::send(fd, &HelperReply::StartFailed { error: error.into() }, &[])?;
            return Ok(());
        }
        (Some(_), Some(e)) => match prepare(&e, &mut plan) {
            Ok(p) => Some(p),
            Err(error) => {
                proto::send(fd, &HelperReply::StartFailed { error }, &[])?;
                return Ok(());
            }
        },
    };
    let mut sandbox = match Sandbox::start(&plan, &Options { tty }) {
        Ok(sb) => sb,
        Err(e) => {
            proto::send(fd, &HelperReply::StartFailed { error: e.to_string() }, &[])?;
            return Ok(());
        }
    };
    // The proxy serves the listener init handed out (a thread of ours: the
    // sandbox is started, forking is over).
    let _proxy = match prepared {
        None => None,
        Some(p) => match start_proxy(p, &mut sandbox) {
            Ok(h) => Some(h),
            Err(error) => {
                drop(sandbox);
                proto::send(fd, &HelperReply::StartFailed { error }, &[])?;
                return Ok(());
            }
        },
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
            Some((HelperRequest::Spawn(wire), fds)) => {
                let reply = spawn(&mut sandbox, &wire.to_spec(), fds);
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

/// Start a background command on the three descriptors the client sent
/// (init gets its own copies; ours close when this returns).
fn spawn(sandbox: &mut Sandbox, spec: &clawcage_sandbox::ExecSpec, fds: Vec<OwnedFd>) -> HelperReply {
    let [stdin, stdout, stderr]: [OwnedFd; 3] = match fds.try_into() {
        Ok(a) => a,
        Err(v) => return HelperReply::Error { error: format!("spawn needs 3 descriptors, got {}", v.len()) },
    };
    match sandbox.spawn(spec, stdin.as_fd(), stdout.as_fd(), stderr.as_fd()) {
        Ok(Ok(id)) => HelperReply::Spawned { id },
        Ok(Err(error)) => HelperReply::SpawnFailed { error },
        Err(e) => HelperReply::Error { error: e.to_string() },
    }
}

/// What `prepare` made for `start_proxy`.
struct Prepared {
    start: EgressStart,
    policy: clawcage_policy::Policy,
    ca: std::sync::Arc<clawcage_egress::tls::Ca>,
    secrets: clawcage_egress::SecretTable,
}

/// Load (or create) the installation's CA, write the sandbox's CA bundle,
/// and put secret placeholders into the plan; the values stay here.
fn prepare(e: &EgressStart, plan: &mut clawcage_policy::Plan) -> Result<Prepared, String> {
    use clawcage_egress::{tls, Secrets};
    let policy = clawcage_policy::parse_str(&e.policy_toml, "the effective policy")
        .map_err(|err| format!("egress: policy: {err}"))?;
    let dir = e.state_dir.join("ca");
    let ca = std::sync::Arc::new(tls::Ca::load_or_create(&dir).map_err(|err| format!("egress CA: {err}"))?);
    let bundle = tls::write_bundle(&ca, &dir).map_err(|err| format!("egress CA bundle: {err}"))?;
    plan.set_ca_bundle(bundle);
    let (env, secrets) = Secrets::prepare(&policy).map_err(|err| format!("egress: {err}"))?;
    for (name, placeholder) in env {
        plan.set_env(&name, &placeholder);
    }
    Ok(Prepared { start: e.clone(), policy, ca, secrets })
}

/// Serve the sandbox's egress listener; decisions go to the audit log as
/// the task's records.
fn start_proxy(p: Prepared, sandbox: &mut Sandbox) -> Result<clawcage_egress::ProxyHandle, String> {
    use clawcage_store::audit::{AuditLog, SigningKey};
    let listener = sandbox.take_proxy_listener().ok_or("egress: the sandbox handed out no listener")?;
    let key = SigningKey::from_env().map_err(|e| format!("audit signing key: {e}"))?;
    let paths = clawcage_store::StatePaths::new(&p.start.state_dir);
    let log = AuditLog::open(&paths, key).map_err(|e| format!("audit log: {e}"))?;
    let sink =
        std::sync::Arc::new(crate::audit::AuditSink::new(std::sync::Arc::new(log), Some(p.start.sandbox.clone())));
    let config = clawcage_egress::Config::new(&p.policy, &p.start.sandbox, &p.start.policy_name, p.secrets, Some(p.ca))
        .map_err(|e| format!("egress: {e}"))?;
    clawcage_egress::Proxy::spawn(config, listener, sink).map_err(|e| format!("egress proxy: {e}"))
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
