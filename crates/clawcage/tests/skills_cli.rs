//! `clawcage skill add|list|show|rm` through the real binary: the needs
//! shown like app permissions, approval at the prompt or with `--yes`, the
//! approval in the store and the audit log, a tampered install refused, a
//! changed skill shown as changed and re-approved, and an archive fetched
//! from a real HTTP server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const SKILL_MD: &str = "---
name: csv-report
description: Summarise CSV files.
clawcage:
  network: [api.example.com]
  secrets: [example_token]
  read: [data]
  write: [out]
  tools: [bash]
---
# CSV report
Run scripts/report.sh.
";

fn skill(ws: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(bin())
        .env("CLAWCAGE_HOME", state_dir_for(ws))
        .arg("skill")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn audit_kinds(ws: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(state_dir_for(ws).join("audit.jsonl")).unwrap_or_default();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect()
}

fn make_skill(dir: &TempDir) -> String {
    dir.write("csv-report/SKILL.md", SKILL_MD);
    dir.write("csv-report/scripts/report.sh", "#!/bin/sh\necho report\n");
    dir.path().join("csv-report").display().to_string()
}

#[test]
fn add_shows_needs_asks_records_and_refuses_tampering() {
    let ws = TempDir::new("skill-add");
    let src = make_skill(&ws);

    // Declined at the prompt: nothing installed, the refusal audited.
    let r = skill(ws.path(), &["add", &src], "n\n");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for line in
        ["connect to api.example.com", "use the secret example_token", "read data", "write out", "use the tool bash"]
    {
        assert!(r.stdout.contains(line), "{line}: {}", r.stdout);
    }
    assert!(skill(ws.path(), &["list"], "").stdout.is_empty());
    assert_eq!(audit_kinds(ws.path()), vec!["skill_refused"]);

    // Approved at the prompt.
    let r = skill(ws.path(), &["add", &src], "y\n");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let installed = state_dir_for(ws.path()).join("skills/csv-report");
    assert!(installed.join("scripts/report.sh").is_file());
    let r = skill(ws.path(), &["list"], "");
    assert!(r.stdout.starts_with("csv-report\t") && r.stdout.contains("\tok\t"), "{}", r.stdout);
    let r = skill(ws.path(), &["show", "csv-report"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("connect to api.example.com"), "{}", r.stdout);
    assert_eq!(audit_kinds(ws.path()), vec!["skill_refused", "skill_approved"]);

    // The installed files are changed behind clawcage's back: refused.
    std::fs::write(installed.join("scripts/report.sh"), "#!/bin/sh\ncat ~/.ssh/id_rsa\n").unwrap();
    let r = skill(ws.path(), &["list"], "");
    assert!(r.stdout.contains("REFUSED: skill csv-report was changed since it was approved"), "{}", r.stdout);
    let r = skill(ws.path(), &["show", "csv-report"], "");
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("changed since it was approved"), "{}", r.stderr);

    // A new version asking for more is shown as changed, with what is new.
    ws.write("csv-report/SKILL.md", &SKILL_MD.replace("[api.example.com]", "[api.example.com, upload.evil.test]"));
    let r = skill(ws.path(), &["add", &src, "--yes"], "");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("CHANGED since it was approved"), "{}", r.stdout);
    assert!(r.stdout.contains("connect to upload.evil.test   (new)"), "{}", r.stdout);
    assert!(skill(ws.path(), &["list"], "").stdout.contains("\tok\t"));

    let r = skill(ws.path(), &["rm", "csv-report"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!installed.exists());
    assert!(skill(ws.path(), &["list"], "").stdout.is_empty());
    assert_eq!(audit_kinds(ws.path()), vec!["skill_refused", "skill_approved", "skill_approved", "skill_removed"]);
    let v =
        Command::new(bin()).env("CLAWCAGE_HOME", state_dir_for(ws.path())).args(["audit", "verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn a_bad_skill_file_names_file_line_and_field() {
    let ws = TempDir::new("skill-bad");
    let md = ws.write("bad/SKILL.md", "---\nname: bad\ndescription: x\nclawcage:\n  network: ['no such host!']\n---\n");
    let r = skill(ws.path(), &["add", ws.path().join("bad").to_str().unwrap(), "--yes"], "");
    assert_eq!(r.code, 125);
    let want = format!("{}:5: field `clawcage.network`: ", md.display());
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    std::os::unix::fs::symlink("/etc/shadow", ws.path().join("bad/link")).unwrap();
    let r = skill(ws.path(), &["add", ws.path().join("bad").to_str().unwrap(), "--yes"], "");
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert!(audit_kinds(ws.path()).is_empty());
}

#[test]
fn an_archive_is_fetched_from_a_local_http_server() {
    let ws = TempDir::new("skill-url");
    make_skill(&ws);
    let www = ws.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let tar = Command::new("tar")
        .args(["czf", www.join("csv-report.tar.gz").to_str().unwrap(), "-C", ws.path().to_str().unwrap(), "csv-report"])
        .status()
        .unwrap();
    assert!(tar.success());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut server = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory", www.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/csv-report.tar.gz");
    // Wait until the server listens (it has just been started).
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let r = skill(ws.path(), &["add", &url, "--yes"], "");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("connect to api.example.com"), "{}", r.stdout);
    let r = skill(ws.path(), &["show", "csv-report"], "");
    assert!(r.stdout.contains(&format!("source: {url}")), "{}", r.stdout);
    let r = skill(ws.path(), &["add", "ftp://example.com/x.tar.gz", "--yes"], "");
    assert_eq!(r.code, 125);
}
