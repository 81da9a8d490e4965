//! Approval prompts of `clawcage run` under a real pty: the approver sees
//! the full command, its working directory and the rule; `y` runs it, `n`
//! and silence refuse it (exit 126); the request is on the audit record
//! before the question is answered, and the decision after; without a
//! terminal the command is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use clawcage_store::audit::Record;
use common::*;
use std::path::Path;
use std::process::Command;

fn records(ws: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(state_dir_for(ws).join("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| Record::parse_line(l.as_bytes()).unwrap()).collect()
}

fn kinds(ws: &Path) -> Vec<String> {
    records(ws).into_iter().map(|r| r.kind).collect()
}

/// `clawcage run` with an `[approvals]` policy, removing `victim` through a shell.
fn setup(tag: &str, timeout: &str) -> (TempDir, Command) {
    let ws = TempDir::new(tag);
    ws.write("victim/file", "x\n");
    let policy = format!("[approvals]\ncommands = [\"rm -rf\"]\ntimeout = \"{timeout}\"\n");
    let cmd = command(ws.path(), Some(&policy), &["/bin/sh", "-c", "cd . && rm -rf victim; echo RAN-IT"]);
    (ws, cmd)
}

/// Whether the command's own output line is there (the prompt shows the
/// command's text, so the word alone proves nothing).
fn ran(out: &str) -> bool {
    out.lines().any(|l| l.trim_end() == "RAN-IT")
}

fn shell_quoted_command() -> &'static str {
    "/bin/sh -c 'cd . && rm -rf victim; echo RAN-IT'"
}

#[test]
fn yes_at_the_terminal_runs_the_command_and_both_records_exist() {
    let (ws, cmd) = setup("approve-yes", "5m");
    let mut pty = Pty::spawn(cmd, 24, 120);
    pty.wait_for("Allow? [y/N]");
    let shown = pty.output();
    for needle in
        [shell_quoted_command(), &ws.path().display().to_string(), "approval rule \"rm -rf\"", "rm -rf victim"]
    {
        assert!(shown.contains(needle), "the prompt lacks {needle:?}:\n{shown}");
    }
    // Asked only once the request is on the record; nothing ran yet.
    assert_eq!(kinds(ws.path()), ["approval_request"]);
    assert!(ws.path().join("victim/file").exists());
    pty.type_in("y\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    assert!(ran(&out), "{out}");
    assert!(!ws.path().join("victim").exists());
    assert_eq!(
        kinds(ws.path()),
        ["approval_request", "approval_decision", "sandbox_start", "exec", "exec_end", "sandbox_stop"]
    );
    let decision = &records(ws.path())[1];
    assert_eq!(decision.data["decision"], "approved");
    assert!(decision.data["by"].as_str().unwrap().starts_with("terminal"), "{}", decision.data);
    let show = output(Command::new(bin()).env("CLAWCAGE_HOME", state_dir_for(ws.path())).args(["audit", "show"]));
    assert!(show.stdout.contains("approval_request") && show.stdout.contains("decision=approved"), "{}", show.stdout);
}

#[test]
fn no_at_the_terminal_refuses_with_126_and_nothing_runs() {
    let (ws, cmd) = setup("approve-no", "5m");
    let mut pty = Pty::spawn(cmd, 24, 120);
    pty.wait_for("Allow? [y/N]");
    pty.type_in("maybe\n");
    pty.wait_for("please answer y or n");
    pty.type_in("n\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 126, "{out}");
    assert!(out.contains("clawcage: not run: denied by terminal"), "{out}");
    assert!(!ran(&out), "{out}");
    assert!(ws.path().join("victim/file").exists());
    assert_eq!(kinds(ws.path()), ["approval_request", "approval_decision"]);
    assert_eq!(records(ws.path())[1].data["decision"], "denied");
}

#[test]
fn no_answer_times_out_to_a_denial() {
    let (ws, cmd) = setup("approve-timeout", "1s");
    let pty = Pty::spawn(cmd, 24, 120);
    pty.wait_for("Allow? [y/N] (denied in 1 s");
    let (code, out) = pty.finish();
    assert_eq!(code, 126, "{out}");
    assert!(out.contains("approval request timed out") && out.contains("rule \"rm -rf\""), "{out}");
    assert!(ws.path().join("victim/file").exists());
    assert_eq!(records(ws.path())[1].data["decision"], "expired");
}

#[test]
fn without_a_terminal_the_command_is_refused_and_unmatched_commands_just_run() {
    let (ws, mut cmd) = setup("approve-notty", "5m");
    // SAFETY: setsid between fork and exec only: no controlling terminal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let r = output(&mut cmd);
    r.expect_code(126);
    assert!(r.stderr.contains("no terminal to ask for approval on"), "{}", r.stderr);
    assert!(ws.path().join("victim/file").exists());
    let policy = "[approvals]\ncommands = [\"rm -rf\"]\n";
    let fine = run(ws.path(), Some(policy), &["/bin/sh", "-c", "rm -r victim && echo gone"]);
    fine.expect_code(0);
    assert!(fine.stdout.contains("gone"));
}

#[test]
fn applying_changes_to_write_rule_paths_waits_for_the_approver() {
    let ws = TempDir::new("approve-writes");
    ws.write("deploy/prod.yaml", "replicas: 1\n");
    let policy = "[filesystem]\nchanges = \"review\"\n[approvals]\nwrites = [\"deploy/**\"]\n";
    let r = run(ws.path(), Some(policy), &["/bin/sh", "-c", "echo 'replicas: 9' > deploy/prod.yaml; echo n > notes"]);
    r.expect_code(0);
    let line = r.stderr.lines().find(|l| l.contains("held for review in task")).unwrap();
    let task = line.rsplit(' ').next().unwrap().to_string();
    let apply = || {
        let mut c = Command::new(bin());
        c.env("CLAWCAGE_HOME", state_dir_for(ws.path())).args(["apply", &task]);
        c
    };
    let mut pty = Pty::spawn(apply(), 24, 120);
    pty.wait_for("Allow? [y/N]");
    assert!(pty.output().contains("write:   deploy/prod.yaml"), "{}", pty.output());
    pty.type_in("n\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 126, "{out}");
    assert!(out.contains("apply refused: denied by terminal"), "{out}");
    assert_eq!(std::fs::read_to_string(ws.path().join("deploy/prod.yaml")).unwrap(), "replicas: 1\n");
    assert!(!ws.path().join("notes").exists(), "a refused apply applied something");

    let mut pty = Pty::spawn(apply(), 24, 120);
    pty.wait_for("Allow? [y/N]");
    pty.type_in("y\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read_to_string(ws.path().join("deploy/prod.yaml")).unwrap(), "replicas: 9\n");
    let mine: Vec<String> =
        records(ws.path()).into_iter().filter(|r| r.task.as_deref() == Some(&task)).map(|r| r.kind).collect();
    let tail: Vec<&str> = mine.iter().rev().take(6).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "approval_request",
            "approval_decision",
            "approval_request",
            "approval_decision",
            "changes_apply",
            "changes_applied"
        ]
    );
}
