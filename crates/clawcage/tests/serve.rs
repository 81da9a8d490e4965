//! `clawcage serve --check-config` and `clawcage schedule add|list|rm`
//! through the real binary: exit 0 / 125, errors naming file:line:column:field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::process::Command;

fn config(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    dir.write("policy.toml", "extends = \"default\"\n");
    std::fs::create_dir_all(dir.path().join("ws")).unwrap();
    dir.write(
        "serve.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"0123456789abcdef01\"\n\n\
             [groups.dev]\npolicy = \"policy.toml\"\nworkspace = \"ws\"\n{extra}"
        ),
    )
}

fn clawcage(dir: &TempDir, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).env("CLAWCAGE_HOME", state_dir_for(dir.path())).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_field_of_a_bad_one() {
    let d = TempDir::new("serve-check");
    let good = config(&d, "");
    let (code, out, err) = clawcage(&d, &["serve", "--config", good.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: ") && out.contains("group dev: policy"), "{out}");
    assert!(out.contains("the agent may not schedule"), "{out}");
    let tools = config(&d, "agent_schedules = 4\n");
    let (code, out, err) = clawcage(&d, &["serve", "--config", tools.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the agent may keep 4 schedule(s)"), "{out}");
    let bad = config(&d, "agent_schedules = 0\n");
    let (code, _, err) = clawcage(&d, &["serve", "--config", bad.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 125);
    let want = format!("clawcage: {}:8:19: field `groups.dev.agent_schedules`: 0 is not a number", bad.display());
    assert!(err.starts_with(&want), "{err}");

    let bad = config(&d, "modle = \"x\"\n");
    let (code, _, err) = clawcage(&d, &["serve", "--config", bad.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 125);
    let want = format!("clawcage: {}:8:1: field `groups.dev.modle`: unknown field `modle`", bad.display());
    assert!(err.starts_with(&want), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, _, err) = clawcage(&d, &["serve", "--config", "/nonexistent/serve.toml", "--check-config"]);
    assert_eq!(code, 125);
    assert!(err.contains("/nonexistent/serve.toml: cannot read the config file"), "{err}");
}

#[test]
fn schedules_are_added_listed_and_removed() {
    let d = TempDir::new("serve-sched");
    let cfg = config(&d, "");
    let cfg = cfg.to_str().unwrap();
    let (code, _, err) = clawcage(&d, &["schedule", "add", "--config", cfg, "--group", "dev", "--cron", "soon", "hi"]);
    assert_eq!(code, 125);
    assert!(err.starts_with("clawcage: --cron: \"soon\" is not a cron expression"), "{err}");
    let (code, _, err) =
        clawcage(&d, &["schedule", "add", "--config", cfg, "--group", "ops", "--cron", "0 9 * * *", "x"]);
    assert_eq!(code, 125);
    assert!(err.contains("--group: no group \"ops\""), "{err}");

    let (code, out, err) = clawcage(
        &d,
        &["schedule", "add", "--config", cfg, "--group", "dev", "--cron", "30 9 * * 1-5", "standup notes"],
    );
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    assert!(out.contains("T09:30:00Z"), "{out}");
    let (code, out, _) =
        clawcage(&d, &["schedule", "add", "--config", cfg, "--group", "dev", "--at", "2031-02-03T04:05:06Z", "once"]);
    assert_eq!(code, 0);
    assert!(out.contains("next 2031-02-03T04:05:06Z"), "{out}");

    let (_, list, _) = clawcage(&d, &["schedule", "list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().next().unwrap().starts_with(&id) && list.contains("standup notes"), "{list}");
    let (code, _, _) = clawcage(&d, &["schedule", "rm", &id]);
    assert_eq!(code, 0);
    let (code, _, err) = clawcage(&d, &["schedule", "rm", &id]);
    assert_eq!(code, 125, "{err}");
    let (_, list, _) = clawcage(&d, &["schedule", "list"]);
    assert_eq!(list.lines().count(), 1);
    // Each change is on the audit record, and the log verifies.
    let (code, out, _) = clawcage(&d, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    let (_, shown, _) = clawcage(&d, &["audit", "show"]);
    assert_eq!(shown.matches("schedule_created").count(), 2, "{shown}");
    assert_eq!(shown.matches("schedule_deleted").count(), 1, "{shown}");
}
