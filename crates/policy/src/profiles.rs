//! The built-in profiles a policy file `extends`.
//!
//! Every profile starts from nothing: the sandbox sees only what is listed.
//! There is no host home directory, no network and no host environment beyond
//! the variables passed by name.

use crate::approval::Approvals;
use crate::model::{Env, Filesystem, Limits, Network, PathSpec, Policy, SandboxOptions};
use std::time::Duration;

/// Names of the built-in profiles, in the order documented.
pub const PROFILES: [&str; 3] = ["default", "offline", "dev"];

const GIB: u64 = 1024 * 1024 * 1024;

/// The built-in profile called `name` (`default`, `offline` or `dev`).
pub fn builtin(name: &str) -> Option<Policy> {
    match name {
        "default" => Some(default()),
        "offline" => Some(offline()),
        "dev" => Some(dev()),
        _ => None,
    }
}

/// `default` — what runs without `--policy`.
///
/// - read-only: `/usr /bin /sbin /lib /lib32 /lib64 /libx32 /etc /opt`
/// - writable: the workspace (`.`); `changes` not set (the caller's default:
///   straight through for `run`, held for review for agent tasks)
/// - protected (read-only inside the workspace): `.git/hooks`, `.git/config`
/// - no deny entries (no host home is visible to deny anything in)
/// - no network
/// - limits: memory 4GiB, pids 1024, disk 1GiB; no cpu, timeout or output limit
/// - env: `LANG LC_ALL TERM TZ` passed through when set
/// - every protection layer required
/// - no approval rules; unlisted hosts are refused; requests time out after 5m
fn default() -> Policy {
    Policy {
        extends: "default".into(),
        filesystem: Filesystem {
            read: abs(&["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"]),
            write: vec![PathSpec::Workspace(".".into())],
            deny: vec![],
            protect: vec![PathSpec::Workspace(".git/hooks".into()), PathSpec::Workspace(".git/config".into())],
            changes: None,
        },
        network: Network::default(),
        limits: Limits {
            memory: Some(4 * GIB),
            cpus: None,
            pids: Some(1024),
            timeout: None,
            disk: Some(GIB),
            output: None,
        },
        env: Env { pass: ["LANG", "LC_ALL", "TERM", "TZ"].map(String::from).to_vec(), set: Default::default() },
        sandbox: SandboxOptions::default(),
        approvals: Approvals::default(),
        secrets: Default::default(),
    }
}

/// `offline` — `default`, but the workspace is read-only and commands time out.
///
/// - read-only: the `default` system directories plus the workspace (`.`)
/// - writable: nothing (the private /tmp and $HOME stay writable)
/// - timeout: 10m; everything else as in `default`
fn offline() -> Policy {
    let mut p = default();
    p.extends = "offline".into();
    p.filesystem.read.push(PathSpec::Workspace(".".into()));
    p.filesystem.write.clear();
    p.limits.timeout = Some(Duration::from_secs(10 * 60));
    p
}

/// `dev` — `default` plus toolchains and package registries.
///
/// - read-only in addition: `~/.cargo ~/.rustup ~/.npm ~/.pyenv ~/.local`
/// - denied: `~/.ssh ~/.aws ~/.gnupg ~/.config/gh **/.env`
/// - network: crates.io, static.crates.io, index.crates.io, pypi.org,
///   files.pythonhosted.org, registry.npmjs.org (ports 80 and 443), at
///   most 256 connections at once
/// - limits: memory 8GiB, pids 4096, timeout 1h; disk 1GiB as in `default`
fn dev() -> Policy {
    let mut p = default();
    p.extends = "dev".into();
    let home = |names: &[&str]| -> Vec<PathSpec> { names.iter().map(|n| PathSpec::Home(n.to_string())).collect() };
    p.filesystem.read.extend(home(&[".cargo", ".rustup", ".npm", ".pyenv", ".local"]));
    p.filesystem.deny = home(&[".ssh", ".aws", ".gnupg", ".config/gh"]);
    p.filesystem.deny.push(PathSpec::Glob("**/.env".into()));
    p.network.allow = [
        "crates.io",
        "static.crates.io",
        "index.crates.io",
        "pypi.org",
        "files.pythonhosted.org",
        "registry.npmjs.org",
    ]
    .map(String::from)
    .to_vec();
    p.network.max_connections = Some(256);
    p.limits.memory = Some(8 * GIB);
    p.limits.pids = Some(4096);
    p.limits.timeout = Some(Duration::from_secs(60 * 60));
    p
}

fn abs(paths: &[&str]) -> Vec<PathSpec> {
    paths.iter().map(|p| PathSpec::Absolute(p.to_string())).collect()
}
