//! `[approvals] network = "ask"` in `clawcage run`, under a real pty: the
//! first connection to an unlisted host waits for the person at the
//! terminal, who sees host:port and the task; `y` allows that destination
//! for the rest of the task, `n` and silence refuse it (403 inside), and no
//! terminal refuses it. Request and decision are on the audit record before
//! the connection is made or refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;
mod egress_support;

use clawcage_store::audit::Record;
use common::*;
use egress_support::{Origin, OriginOpts};
use std::path::Path;
use std::process::{Command, Stdio};

fn records(ws: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(state_dir_for(ws).join("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| Record::parse_line(l.as_bytes()).unwrap()).collect()
}

fn of_kind(ws: &Path, kinds: &[&str]) -> Vec<Record> {
    records(ws).into_iter().filter(|r| kinds.contains(&r.kind.as_str())).collect()
}

/// A policy that lists no host, names two on 127.0.0.1, and asks.
fn policy(timeout: &str) -> String {
    format!(
        "[network]\nallow_ips = [\"127.0.0.1\"]\n[network.hosts]\n\"asked.test\" = \"127.0.0.1\"\n\
         [approvals]\nnetwork = \"ask\"\ntimeout = \"{timeout}\"\n"
    )
}

fn code_of(url: &str) -> String {
    format!("curl -sS -o /dev/null -w 'code=%{{http_code}}\\n' {url}")
}

#[test]
fn yes_allows_the_host_for_the_rest_of_the_task_and_the_terminal_stays_the_commands() {
    let ws = TempDir::new("ask-yes");
    let web = Origin::start(OriginOpts::http("web"));
    let p = web.port;
    // After the approval the command reads its own stdin (the same terminal):
    // the answer must not have gone to it, and what is typed next must.
    let script = format!(
        "curl -sS http://asked.test:{p}/one; curl -sS http://asked.test:{p}/two; read line; echo \"read:$line\""
    );
    let mut pty = Pty::spawn(command(ws.path(), Some(&policy("5m")), &["/bin/sh", "-c", &script]), 24, 120);
    pty.wait_for("Allow? [y/N]");
    let shown = pty.output();
    assert!(shown.contains(&format!("connect: asked.test:{p}")), "{shown}");
    let task = records(ws.path())[0].task.clone().unwrap();
    assert!(shown.contains(&format!("for task {task}")), "{shown}");
    // Asked with the request on the record, and nothing connected yet.
    assert_eq!(of_kind(ws.path(), &["approval_request", "approval_decision", "network"]).len(), 1);
    assert!(web.requests().is_empty());
    pty.type_in("y\n");
    pty.wait_for("path=/two");
    pty.type_in("hello\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("origin=web path=/one") && out.contains("origin=web path=/two"), "{out}");
    assert!(out.contains("read:hello"), "the command's stdin did not come back after the question:\n{out}");
    assert_eq!(web.requests().len(), 2);
    let seq: Vec<(String, String)> = of_kind(ws.path(), &["approval_request", "approval_decision", "network"])
        .into_iter()
        .map(|r| {
            let detail = match r.kind.as_str() {
                "approval_decision" => r.data["decision"].as_str().unwrap().to_string(),
                "network" => r.data["rule"].as_str().unwrap_or("").to_string(),
                _ => r.data["subject"]["host"].as_str().unwrap().to_string(),
            };
            (r.kind, detail)
        })
        .collect();
    assert_eq!(seq.len(), 4, "one question, two connections: {seq:?}");
    assert_eq!(seq[0], ("approval_request".into(), "asked.test".into()));
    assert_eq!(seq[1], ("approval_decision".into(), "approved".into()));
    assert!(seq[2].0 == "network" && seq[2].1.starts_with("approved by terminal"), "{seq:?}");
    assert!(seq[3].0 == "network" && seq[3].1.ends_with("earlier in this task"), "{seq:?}");
}

#[test]
fn no_refuses_the_host_for_the_rest_of_the_task_and_nothing_reaches_it() {
    let ws = TempDir::new("ask-no");
    let web = Origin::start(OriginOpts::http("web"));
    let once = code_of(&format!("http://asked.test:{}/", web.port));
    // A client that tries again is refused again, without a second question.
    let script = format!("{once}; {once}");
    let mut pty = Pty::spawn(command(ws.path(), Some(&policy("5m")), &["/bin/sh", "-c", &script]), 24, 120);
    pty.wait_for("Allow? [y/N]");
    pty.type_in("n\n");
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("code=403").count(), 2, "{out}");
    assert_eq!(out.matches("Allow? [y/N]").count(), 1, "{out}");
    assert!(web.requests().is_empty());
    let recs = of_kind(ws.path(), &["approval_request", "approval_decision", "network"]);
    let kinds: Vec<&str> = recs.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["approval_request", "approval_decision", "network", "network"]);
    assert_eq!(recs[1].data["decision"], "denied");
    assert!(recs[2..].iter().all(|r| r.data["decision"] == "deny"));
}

#[test]
fn no_answer_times_out_to_a_refusal() {
    let ws = TempDir::new("ask-timeout");
    let web = Origin::start(OriginOpts::http("web"));
    let script = code_of(&format!("http://asked.test:{}/", web.port));
    let pty = Pty::spawn(command(ws.path(), Some(&policy("1s")), &["/bin/sh", "-c", &script]), 24, 120);
    pty.wait_for("Allow? [y/N] (denied in 1 s");
    let (code, out) = pty.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no answer: denied") && out.contains("code=403"), "{out}");
    assert!(web.requests().is_empty());
    assert_eq!(of_kind(ws.path(), &["approval_decision"])[0].data["decision"], "expired");
}

#[test]
fn without_a_terminal_an_unlisted_host_is_refused() {
    let ws = TempDir::new("ask-notty");
    let web = Origin::start(OriginOpts::http("web"));
    let script = code_of(&format!("http://asked.test:{}/", web.port));
    let mut cmd: Command = command(ws.path(), Some(&policy("5m")), &["/bin/sh", "-c", &script]);
    // SAFETY: setsid between fork and exec only: no controlling terminal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let r = output(cmd.stdin(Stdio::null()));
    r.expect_code(0);
    assert!(r.stdout.contains("code=403"), "{}\n{}", r.stdout, r.stderr);
    assert!(web.requests().is_empty());
    let decision = &of_kind(ws.path(), &["approval_decision"])[0];
    assert_eq!(decision.data["decision"], "denied");
    assert!(decision.data["reason"].as_str().unwrap().contains("no terminal"), "{}", decision.data);
}
