//! End-to-end tests of the audit log and the store through the real
//! `clawcage` binary: what `run` records, `audit verify` against each kind
//! of tampering (exit 1, the right record named), `run` refusing when it
//! cannot record (exit 125), and `kill -9` of clawcage during a burst of
//! runs leaving a log that verifies with a record for every effect.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use clawcage_store::audit::Record;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A workspace and its state directory (removed on drop).
struct Env {
    ws: TempDir,
    key: Option<PathBuf>,
}

impl Env {
    fn new(tag: &str) -> Env {
        Env { ws: TempDir::new(tag), key: None }
    }
    fn state(&self) -> PathBuf {
        state_dir_for(self.ws.path())
    }
    fn log(&self) -> PathBuf {
        self.state().join("audit.jsonl")
    }
    /// Sign heads with a fresh key file (kept outside the state directory).
    fn with_key(mut self) -> Env {
        let key = self.ws.path().with_extension("key");
        std::fs::write(&key, b"0123456789abcdef0123456789abcdef-test-key").unwrap();
        chmod(&key, 0o600);
        self.key = Some(key);
        self
    }
    fn clawcage(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env("CLAWCAGE_HOME", self.state()).args(args);
        match &self.key {
            Some(k) => cmd.env("CLAWCAGE_AUDIT_KEY_FILE", k),
            None => cmd.env_remove("CLAWCAGE_AUDIT_KEY_FILE"),
        };
        cmd
    }
    fn cli(&self, args: &[&str]) -> Run {
        output(&mut self.clawcage(args))
    }
    fn run_cmd(&self, argv: &[&str]) -> Command {
        let mut cmd = self.clawcage(&["run", "--workspace"]);
        cmd.arg(self.ws.path()).arg("--").args(argv);
        cmd
    }
    fn sh(&self, script: &str) -> Run {
        output(&mut self.run_cmd(&["/bin/sh", "-c", script]))
    }
    fn records(&self) -> Vec<Record> {
        self.lines().iter().map(|l| Record::parse_line(l.as_bytes()).unwrap()).collect()
    }
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log()).unwrap().lines().map(str::to_string).collect()
    }
    fn set_lines(&self, lines: &[String]) {
        std::fs::write(self.log(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state().join("clawcage.db")).unwrap()
    }
    /// `audit verify`, expecting exit 1; returns its output.
    fn tampered(&self) -> String {
        let r = self.cli(&["audit", "verify"]);
        r.expect_code(1);
        assert!(r.stdout.contains("TAMPERED"), "{}", r.stdout);
        r.stdout
    }
    /// Three runs: 12 records.
    fn filled(tag: &str) -> Env {
        let env = Env::new(tag);
        for n in 0..3 {
            env.sh(&format!("echo {n}")).expect_code(0);
        }
        assert_eq!(env.lines().len(), 12);
        env
    }
}

fn rehash(mut r: Record) -> String {
    r.hash = r.compute_hash().unwrap();
    r.to_line().unwrap().trim_end().to_string()
}

#[test]
fn run_records_a_task_and_its_audit_trail() {
    let env = Env::new("trail");
    let r = env.sh("echo out; echo errs >&2; touch made; exit 3");
    r.expect_code(3);
    assert_eq!(r.stdout, "out\n");
    assert!(env.ws.path().join("made").exists());

    let recs = env.records();
    let kinds: Vec<&str> = recs.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["sandbox_start", "exec", "exec_end", "sandbox_stop"]);
    let task = recs[0].task.clone().unwrap();
    assert!(recs.iter().all(|r| r.task.as_deref() == Some(&task)));
    assert_eq!(
        recs[1].data["argv"],
        serde_json::json!(["/bin/sh", "-c", "echo out; echo errs >&2; touch made; exit 3"])
    );
    assert_eq!(recs[1].data["cwd"], env.ws.path().display().to_string());
    let end = &recs[2].data;
    assert_eq!((end["outcome"].as_str(), end["status"].as_i64()), (Some("exited"), Some(3)));
    assert_eq!((end["stdout_bytes"].as_u64(), end["stderr_bytes"].as_u64()), (Some(4), Some(5)));

    // The policy hash is SHA-256 of the effective policy's canonical TOML
    // (what `policy check` prints after its comment line).
    let pol = env.ws.path().with_extension("policy.toml");
    std::fs::write(&pol, "extends = \"default\"\n").unwrap();
    let printed = env.cli(&["policy", "check", pol.to_str().unwrap()]);
    let toml = printed.stdout.split_once('\n').unwrap().1;
    let mut sha = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(sha.stdin.as_mut().unwrap(), toml.as_bytes()).unwrap();
    let digest = String::from_utf8(sha.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(recs[0].data["policy_hash"].as_str(), digest.split_whitespace().next());

    // The store has the task and its tool call.
    let tasks = env.cli(&["tasks"]);
    tasks.expect_code(0);
    assert!(tasks.stdout.contains(&task) && tasks.stdout.contains("failed"), "{}", tasks.stdout);
    let one = env.cli(&["tasks", &task]);
    one.expect_code(0);
    assert!(one.stdout.contains("status:    failed (exit status 3)"), "{}", one.stdout);
    assert!(one.stdout.contains("exit 3,") && one.stdout.contains("9 bytes"), "{}", one.stdout);

    let v = env.cli(&["audit", "verify"]);
    v.expect_code(0);
    assert!(v.stdout.starts_with("ok:") && v.stdout.contains("4 records"), "{}", v.stdout);
    let show = env.cli(&["audit", "show", "--task", &task]);
    show.expect_code(0);
    assert_eq!(show.stdout.lines().count(), 4, "{}", show.stdout);
    assert!(show.stdout.contains("exec_end") && show.stdout.contains("status=3"), "{}", show.stdout);
    let export = env.cli(&["audit", "export", "--format", "jsonl"]);
    export.expect_code(0);
    assert_eq!(export.stdout, std::fs::read_to_string(env.log()).unwrap());
}

#[test]
fn bad_input_to_audit_and_tasks_is_a_clear_error() {
    let env = Env::filled("badinput");
    let r = env.cli(&["audit", "export", "--format", "xml"]);
    r.expect_code(125);
    assert!(r.stderr.contains("--format \"xml\"") && r.stderr.contains("jsonl"), "{}", r.stderr);
    let r = env.cli(&["audit", "show", "--task", "nope"]);
    r.expect_code(125);
    assert!(r.stderr.contains("unknown task \"nope\""), "{}", r.stderr);
    let r = env.cli(&["tasks", "nope"]);
    r.expect_code(125);
    assert!(r.stderr.contains("unknown task \"nope\""), "{}", r.stderr);
    let r = env.cli(&["tasks", "--status", "done"]);
    r.expect_code(125);
    assert!(r.stderr.contains("--status") && r.stderr.contains("succeeded"), "{}", r.stderr);
    let r = env.cli(&["tasks", "--status", "succeeded"]);
    r.expect_code(0);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
}

#[test]
fn an_empty_state_directory_verifies_and_lists_nothing() {
    let env = Env::new("empty");
    env.cli(&["audit", "verify"]).expect_code(0);
    assert_eq!(env.cli(&["tasks"]).stdout, "no tasks\n");
    assert!(!env.state().exists(), "read-only commands created the state directory");
}

#[test]
fn verify_names_an_edited_record() {
    let env = Env::filled("edit");
    let mut lines = env.lines();
    lines[5] = lines[5].replace("echo 1", "echo X");
    env.set_lines(&lines);
    let out = env.tampered();
    assert!(out.contains("line 6 (seq 6)") && out.contains("edited"), "{out}");
}

#[test]
fn verify_names_a_deleted_record() {
    let env = Env::filled("delete");
    let mut lines = env.lines();
    lines.remove(4);
    env.set_lines(&lines);
    let out = env.tampered();
    assert!(out.contains("line 5 (seq 6)") && out.contains("deleted"), "{out}");
}

#[test]
fn verify_names_an_inserted_record() {
    let env = Env::filled("insert");
    let mut lines = env.lines();
    let copy = lines[2].clone();
    lines.insert(7, copy);
    env.set_lines(&lines);
    let out = env.tampered();
    assert!(out.contains("line 8 (seq 3)") && out.contains("inserted"), "{out}");
}

#[test]
fn verify_names_swapped_records() {
    let env = Env::filled("swap");
    let mut lines = env.lines();
    lines.swap(8, 9);
    env.set_lines(&lines);
    let out = env.tampered();
    assert!(out.contains("line 9 (seq 10)"), "{out}");
}

#[test]
fn verify_catches_truncation_and_a_removed_last_line() {
    let env = Env::filled("truncate");
    let mut lines = env.lines();
    lines.truncate(8);
    env.set_lines(&lines);
    let out = env.tampered();
    assert!(out.contains("9..=12") && out.contains("truncated"), "{out}");

    let env = Env::filled("lastline");
    let mut lines = env.lines();
    lines.pop();
    env.set_lines(&lines);
    assert!(env.tampered().contains("12..=12"));
}

#[test]
fn verify_catches_a_tampered_store_head() {
    let env = Env::filled("head");
    env.db().execute("UPDATE audit_head SET hash = '00' || substr(hash, 3)", []).unwrap();
    let out = env.tampered();
    assert!(out.contains("seq 12") && out.contains("head replaced"), "{out}");
    env.db().execute("DELETE FROM audit_head", []).unwrap();
    assert!(env.tampered().contains("no head"));
}

#[test]
fn a_forged_rehashed_chain_fails_verify_when_a_signing_key_is_set() {
    let env = Env::new("forge").with_key();
    for n in 0..2 {
        env.sh(&format!("echo {n}")).expect_code(0);
    }
    let ok = env.cli(&["audit", "verify"]);
    ok.expect_code(0);
    assert!(ok.stdout.contains("head signature valid"), "{}", ok.stdout);

    // Rewrite the first exec's argv, re-hash the rest, move the head too.
    let mut lines = env.lines();
    let mut prev = clawcage_store::audit::GENESIS.to_string();
    for line in lines.iter_mut() {
        let mut r = Record::parse_line(line.as_bytes()).unwrap();
        if r.seq == 2 {
            r.data["argv"] = serde_json::json!(["/bin/true"]);
        }
        r.prev = prev;
        *line = rehash(r);
        prev = Record::parse_line(line.as_bytes()).unwrap().hash;
    }
    env.set_lines(&lines);
    env.db().execute("UPDATE audit_head SET hash = ?1", [&prev]).unwrap();
    let out = env.tampered();
    assert!(out.contains("seq 8") && out.contains("forged"), "{out}");
    // And `run` will not build on it.
    let r = env.sh("touch should-not-exist");
    r.expect_code(125);
    assert!(!env.ws.path().join("should-not-exist").exists());
}

#[test]
fn run_refuses_when_it_cannot_record() {
    // The state directory cannot be created: a file is in the way.
    let env = Env::new("refuse");
    std::fs::write(env.state(), "not a directory").unwrap();
    let r = env.sh("touch ran");
    r.expect_code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("clawcage: ") && r.stderr.contains(&env.state().display().to_string()),
        "{}",
        r.stderr
    );
    assert!(!env.ws.path().join("ran").exists(), "the command ran without an audit record");
    std::fs::remove_file(env.state()).unwrap();

    // The log was truncated behind clawcage's back: fail closed.
    let env = Env::filled("refuse-tampered");
    let mut lines = env.lines();
    lines.truncate(10);
    env.set_lines(&lines);
    let r = env.sh("touch ran");
    r.expect_code(125);
    assert!(r.stderr.contains("audit log") && r.stderr.contains("truncated"), "{}", r.stderr);
    assert!(!env.ws.path().join("ran").exists(), "the command ran without an audit record");
}

#[test]
fn concurrent_runs_keep_one_valid_chain() {
    let env = Env::new("concurrent");
    let kids: Vec<_> = (0..6)
        .map(|n| env.run_cmd(&["/bin/sh", "-c", &format!("echo {n}")]).stdout(Stdio::null()).spawn().unwrap())
        .collect();
    for mut k in kids {
        assert!(wait_bounded(&mut k, Duration::from_secs(120)).success());
    }
    env.cli(&["audit", "verify"]).expect_code(0);
    let recs = env.records();
    assert_eq!(recs.len(), 24);
    let tasks: std::collections::BTreeSet<_> = recs.iter().filter_map(|r| r.task.clone()).collect();
    assert_eq!(tasks.len(), 6);
    // Each task's records are in order: start, exec, exec_end, stop.
    for t in tasks {
        let kinds: Vec<&str> = recs.iter().filter(|r| r.task.as_ref() == Some(&t)).map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["sandbox_start", "exec", "exec_end", "sandbox_stop"]);
    }
}

/// Marker files the burst's commands created, by run number.
fn effects(ws: &Path) -> Vec<String> {
    let names = std::fs::read_dir(ws).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    let mut v: Vec<String> = names.filter(|n| n.starts_with("effect-")).collect();
    v.sort();
    v
}

#[test]
fn kill_9_during_a_burst_of_runs_leaves_a_log_that_verifies_and_misses_no_effect() {
    let env = Env::new("kill9");
    let mark = unique_mark("kill9");
    let mut killed = 0;
    for round in 0..6u64 {
        let kids: Vec<_> = (0..4u64)
            .map(|n| {
                let id = round * 4 + n;
                let script = format!("touch effect-{id}-a; sleep 0.05; touch effect-{id}-b");
                let mut cmd = env.run_cmd(&["/bin/sh", "-c", &script]);
                cmd.env(MARK_VAR, &mark).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                (id, cmd.spawn().unwrap())
            })
            .collect();
        for (id, mut k) in kids {
            // Staggered moments, from before the sandbox exists to after the
            // command ended: only where the kill lands varies.
            std::thread::sleep(Duration::from_millis((id * 23) % 90));
            if k.try_wait().unwrap().is_none() {
                killed += 1;
            }
            k.kill().unwrap();
            k.wait().unwrap();
        }
        // The log verifies after every round (a killed writer leaves notes at most).
        let v = env.cli(&["audit", "verify"]);
        assert_eq!(v.code, 0, "round {round}: {}", v.stdout);
    }
    assert!(killed > 0, "no clawcage was still running when killed");
    // A killed clawcage takes its sandbox with it; wait for the processes to go.
    eventually("sandbox processes left behind", Duration::from_secs(20), || sandbox_procs(Some(&mark)));

    let execs: Vec<String> = env
        .records()
        .iter()
        .filter(|r| r.kind == "exec")
        .map(|r| r.data["argv"][2].as_str().unwrap().to_string())
        .collect();
    let happened = effects(env.ws.path());
    let kinds = env.records().iter().fold(std::collections::BTreeMap::new(), |mut m, r| {
        *m.entry(r.kind.clone()).or_insert(0) += 1;
        m
    });
    eprintln!("killed {killed} of 24 runs; {} effects; records by kind: {kinds:?}", happened.len());
    assert!(!happened.is_empty(), "no command got to run: the test shows nothing");
    for effect in &happened {
        let id = effect.trim_start_matches("effect-").split('-').next().unwrap();
        let script_of = format!("touch effect-{id}-a;");
        assert!(
            execs.iter().any(|s| s.starts_with(&script_of)),
            "{effect} exists but no exec record of its command; execs: {execs:#?}"
        );
    }
    // One more run repairs what the last kill left; then nothing is noted.
    env.sh("true").expect_code(0);
    let v = env.cli(&["audit", "verify"]);
    v.expect_code(0);
    assert!(!v.stdout.contains("note:"), "{}", v.stdout);
}
