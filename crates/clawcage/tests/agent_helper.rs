//! The sandbox helper (`clawcage __sandbox-helper`) driven through its
//! client from a multithreaded process, as `agent` does: commands run in
//! one live sandbox in turn, stdio travels as descriptors, and no sandbox
//! process outlives the client (stop, drop, or the helper killed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clawcage_agent::helper::{Client, HelperError};
use clawcage_policy::Context;
use clawcage_sandbox::{ExecSpec, Outcome};
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn plan_for(ws: &Path, policy: &str) -> clawcage_policy::Plan {
    let policy = clawcage_policy::parse_str(policy, "test.toml").unwrap();
    let ctx = Context {
        workspace: std::fs::canonicalize(ws).unwrap(),
        host_home: PathBuf::from("/nonexistent"),
        host_env: Default::default(),
        extra_env: vec![],
        default_changes: clawcage_policy::Changes::Direct,
    };
    clawcage_policy::plan(&policy, &ctx)
}

fn spawn(plan: &clawcage_policy::Plan) -> Client {
    Client::spawn(Path::new(bin()), &["__sandbox-helper"], plan, false).unwrap()
}

fn sh(script: &str) -> ExecSpec {
    ExecSpec { argv: vec!["/bin/sh".into(), "-c".into(), script.into()], ..ExecSpec::default() }
}

#[test]
fn commands_share_one_sandbox_and_stdio_travels_as_descriptors() {
    let dir = TempDir::new("helper-exec");
    let plan = plan_for(dir.path(), "");
    // A multithreaded caller, as agent is.
    let _busy = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(1)));
    let mut c = spawn(&plan);
    assert!(!c.limits_mechanism().is_empty());

    let r = c.exec_collect(&sh("cat; echo out; echo err >&2; exit 3"), b"from stdin\n").unwrap();
    assert_eq!(r.outcome, Outcome::Exited(3));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "from stdin\nout\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n");

    // State persists between commands: same filesystem, same /tmp.
    c.exec_collect(&sh("echo kept > /tmp/t; echo ws > in-ws"), b"").unwrap();
    let r = c.exec_collect(&sh("cat /tmp/t in-ws"), b"").unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "kept\nws\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("in-ws")).unwrap(), "ws\n");

    // Large input and output in both directions (beyond any pipe buffer).
    let big = "x".repeat(3 * 1024 * 1024);
    let r = c.exec_collect(&sh("cat; head -c 2000000 /dev/zero >&2"), big.as_bytes()).unwrap();
    assert_eq!(r.outcome, Outcome::Exited(0));
    assert_eq!(r.stdout.len(), big.len());
    assert_eq!(r.stderr.len(), 2_000_000);

    // A background process holding the command's stdout does not hang the call.
    let r = c.exec_collect(&sh("sleep 30 & echo done"), b"").unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "done\n");

    // Per-command timeout.
    let mut slow = sh("sleep 30");
    slow.timeout = Some(Duration::from_millis(300));
    assert_eq!(c.exec_collect(&slow, b"").unwrap().outcome, Outcome::TimedOut);

    // A program that does not exist.
    let missing = ExecSpec { argv: vec!["/no/such/prog".into()], ..ExecSpec::default() };
    assert!(matches!(c.exec_collect(&missing, b"").unwrap().outcome, Outcome::StartFailed(..)));
    let helper = c.pid();
    c.stop().unwrap();
    assert!(!alive(helper));
}

#[test]
fn no_sandbox_process_outlives_the_client() {
    let dir = TempDir::new("helper-orphans");
    let plan = plan_for(dir.path(), "");
    for how in ["drop", "kill helper"] {
        let mark = unique_mark("helper");
        let mut c = spawn(&plan);
        let mut spec = sh("sleep 60 & echo started");
        spec.env = Some(vec![("PATH".into(), "/usr/bin:/bin".into()), (MARK_VAR.into(), mark.clone())]);
        let r = c.exec_collect(&spec, b"").unwrap();
        assert_eq!(String::from_utf8_lossy(&r.stdout), "started\n");
        assert!(!sandbox_procs(Some(&mark)).is_empty(), "{how}: the sleep should run");
        let helper = c.pid();
        match how {
            "drop" => drop(c),
            _ => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(helper as i32), nix::sys::signal::SIGKILL).unwrap();
                // The client notices on its next request.
                let err = c.exec_collect(&sh("true"), b"").unwrap_err();
                assert!(matches!(err, HelperError::Gone(_)), "{how}: {err}");
                drop(c);
            }
        }
        eventually(&format!("{how}: sandbox processes left"), Duration::from_secs(10), || sandbox_procs(Some(&mark)));
        assert!(!alive(helper));
    }
}

#[test]
fn a_sandbox_that_cannot_start_is_refused_with_the_reason() {
    let dir = TempDir::new("helper-refuse");
    let mut plan = plan_for(dir.path(), "");
    plan.workspace = dir.path().join("does-not-exist");
    let err = Client::spawn(Path::new(bin()), &["__sandbox-helper"], &plan, false).unwrap_err();
    assert!(matches!(err, HelperError::Start(_)), "{err}");
    assert!(err.to_string().contains("does-not-exist"), "{err}");
}

#[test]
fn the_helper_refuses_to_run_without_its_socket() {
    let out = std::process::Command::new(bin()).arg("__sandbox-helper").output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
}
