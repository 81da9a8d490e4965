//! clawcage sandbox, namespace backend.
//!
//! A [`Sandbox`] is one live sandbox: started once from a [`Plan`], it runs
//! any number of commands one after another in the same filesystem state
//! ([`Sandbox::exec`]), then stops. `clawcage run` is start + one exec + stop.
//!
//! Setup reads top to bottom in two places: the host half in
//! [`Sandbox::start`] (supervisor.rs), the inside half in `init::setup`.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod caps;
pub mod cgroup;
mod init;
pub mod landlock;
pub mod mountplan;
pub mod proto;
pub mod pump;
mod rootfs;
pub mod seccomp;
mod spawn;
mod supervisor;
mod sys;

pub use clawcage_policy::Plan;
pub use pump::{Input, Sink};
pub use supervisor::Sandbox;

use std::path::PathBuf;
use std::time::Duration;

/// A setup step that failed, with the path it was working on.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct StepError {
    /// What was being done.
    pub step: &'static str,
    /// The path involved (may be empty).
    pub path: PathBuf,
    /// The system error.
    pub source: std::io::Error,
}

/// The error of setup step `step` on `path` (may be empty), for `map_err`.
pub(crate) fn step(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StepError {
    let path = path.into();
    move |source| StepError { step, path, source }
}

/// [`step`] for the errors of `nix` calls.
pub(crate) fn nix_step(s: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(nix::errno::Errno) -> StepError {
    let f = step(s, path);
    move |e| f(std::io::Error::from(e))
}

/// Why a sandbox could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The plan cannot be carried out on this host.
    #[error(transparent)]
    Plan(#[from] mountplan::PlanError),
    /// A protection layer cannot be applied and the policy does not accept its absence.
    #[error("{layer}: {reason}")]
    Unavailable {
        /// The layer (seccomp, landlock, cgroups, namespaces, ...).
        layer: &'static str,
        /// Why.
        reason: String,
    },
    /// A host-side step failed.
    #[error("{step}: {source}")]
    Host {
        /// What was being done.
        step: String,
        /// The system error.
        source: std::io::Error,
    },
    /// A step inside the new namespaces failed.
    #[error("sandbox setup failed at {step}: {detail}")]
    Setup {
        /// The step.
        step: String,
        /// What happened.
        detail: String,
    },
    /// The sandbox's init died or broke the protocol.
    #[error("sandbox init is gone: {0}")]
    Gone(String),
}

impl SandboxError {
    pub(crate) fn host(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let step = step.into();
        move |source| SandboxError::Host { step, source }
    }
}

/// Options fixed at sandbox start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Mount a private devpts so commands may get a pty (`--tty`).
    pub tty: bool,
}

/// One command to run in a live sandbox.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment; `None`: the plan's.
    pub env: Option<Vec<(String, String)>>,
    /// Working directory inside; `None`: the workspace.
    pub cwd: Option<PathBuf>,
    /// Wall-clock limit; `None`: the plan's.
    pub timeout: Option<Duration>,
    /// stdout+stderr byte limit; `None`: the plan's.
    pub output_limit: Option<u64>,
    /// Run on a new pty of this size (rows, columns) instead of pipes.
    pub tty: Option<(u16, u16)>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed because the wall-clock limit passed.
    TimedOut,
    /// Killed by the kernel because the sandbox hit its memory limit.
    MemoryLimit,
    /// Killed because it wrote more than the output limit.
    OutputLimit,
    /// Could not be started (`errno`, reason).
    StartFailed(i32, String),
}

impl Outcome {
    /// The exit status `clawcage run` reports for this outcome (DESIGN.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Signaled(s) => 128 + s,
            Outcome::TimedOut => 124,
            Outcome::MemoryLimit => 137,
            Outcome::OutputLimit => 128 + libc::SIGXFSZ,
            Outcome::StartFailed(errno, _) if *errno == libc::ENOENT => 127,
            Outcome::StartFailed(..) => 126,
        }
    }

    /// A one-line explanation when clawcage, not the command, ended it.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::TimedOut => Some("killed: wall-clock timeout reached".into()),
            Outcome::MemoryLimit => Some("killed: memory limit reached (out of memory in the sandbox)".into()),
            Outcome::OutputLimit => Some("killed: output limit reached".into()),
            Outcome::StartFailed(_, why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Output of [`Sandbox::exec_collect`].
#[derive(Debug, Clone)]
pub struct Collected {
    /// How it ended.
    pub outcome: Outcome,
    /// Everything written to stdout (up to the output limit).
    pub stdout: Vec<u8>,
    /// Everything written to stderr (up to the output limit).
    pub stderr: Vec<u8>,
}
