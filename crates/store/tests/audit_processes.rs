//! The audit log across processes: concurrent appenders keep one chain, and
//! `kill -9` in the middle of a burst leaves a log that verifies and has a
//! record for every effect that happened.
//!
//! The appenders are this test binary itself, re-run with
//! `APPENDER_DIR` set (see [`appender_burst`]). An appender's "effect" is a
//! line in its own effects file, written only after `append` returned: the
//! contract under test is that no effect exists without its record. Each
//! effect is followed by an after-record (`append_after`, confirmed only by
//! a later append) noted in an `ends` file once it returned: none of those
//! may be lost to a kill either.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_store::audit::{self, AuditLog, Record};
use clawcage_store::{StatePaths, Store};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DIR_ENV: &str = "APPENDER_DIR";
const COUNT_ENV: &str = "APPENDER_COUNT";

struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("clawcage-audit-proc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Appends `count` records to the log in `dir`, and after each append
/// returns writes its effect (`pid i`) to `dir/effects.PID`, then an
/// after-record `exec_end` and, once that returned, `pid i` to `dir/ends.PID`.
/// Each line is one write(2): `writeln!` on a `File` writes piece by piece,
/// and a kill between the pieces left a line the checker could not read.
fn burst(dir: &Path, count: u64) {
    let log = AuditLog::open(&StatePaths::new(dir), None).unwrap();
    let pid = std::process::id();
    let open = |name: String| std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name)).unwrap();
    let (mut effects, mut ends) = (open(format!("effects.{pid}")), open(format!("ends.{pid}")));
    for i in 0..count {
        log.append(Some("burst"), "exec", json!({"pid": pid, "i": i})).unwrap();
        effects.write_all(format!("{pid} {i}\n").as_bytes()).unwrap();
        log.append_after(Some("burst"), "exec_end", json!({"pid": pid, "i": i})).unwrap();
        ends.write_all(format!("{pid} {i}\n").as_bytes()).unwrap();
    }
}

/// Run as a child (with `APPENDER_DIR`): an appender of `APPENDER_COUNT`
/// records. Run as a test: a short burst in-process that must verify.
#[test]
fn appender_burst() {
    if let Some(dir) = std::env::var_os(DIR_ENV) {
        let count = std::env::var(COUNT_ENV).ok().and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
        burst(Path::new(&dir), count);
        return;
    }
    let t = Tmp::new("inproc");
    burst(&t.0, 25);
    let rep = verify(&t.0);
    assert!(rep.ok() && rep.lines == 50 && rep.notes.is_empty(), "{rep:?}");
}

fn spawn_appender(dir: &Path, count: Option<u64>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "appender_burst", "--nocapture", "--test-threads=1"]).env(DIR_ENV, dir);
    if let Some(c) = count {
        cmd.env(COUNT_ENV, c.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap()
}

fn verify(dir: &Path) -> audit::Report {
    let p = StatePaths::new(dir);
    audit::verify(&p.audit, &Store::open(&p.db).unwrap(), None).unwrap()
}

fn records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    audit::for_each_line(&StatePaths::new(dir).audit, |_, l| {
        out.push(Record::parse_line(l).unwrap());
        Ok(())
    })
    .unwrap();
    out
}

/// Every `(pid, i)` in the files named `prefix.PID`.
fn effects(dir: &Path, prefix: &str) -> BTreeSet<(u64, u64)> {
    let mut set = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if !e.file_name().to_string_lossy().starts_with(&format!("{prefix}.")) {
            continue;
        }
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            let (p, i) = line.split_once(' ').unwrap();
            set.insert((p.parse().unwrap(), i.parse().unwrap()));
        }
    }
    set
}

fn wait_bounded(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("appender {} did not finish within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn concurrent_processes_keep_one_valid_chain() {
    let t = Tmp::new("concurrent");
    let mut kids: Vec<Child> = (0..4).map(|_| spawn_appender(&t.0, Some(40))).collect();
    for k in &mut kids {
        wait_bounded(k, Duration::from_secs(120));
        assert!(k.wait().unwrap().success());
    }
    let rep = verify(&t.0);
    assert!(rep.ok(), "{rep:?}");
    // Each appender confirmed its last after-record as its log was dropped.
    assert!(rep.notes.is_empty(), "{:?}", rep.notes);
    assert_eq!(rep.lines, 320);
    // Each process's records are in its own order, interleaved with others'.
    let recs = records(&t.0);
    for k in &kids {
        for kind in ["exec", "exec_end"] {
            let mine: Vec<u64> = recs
                .iter()
                .filter(|r| r.data["pid"] == k.id() && r.kind == kind)
                .map(|r| r.data["i"].as_u64().unwrap())
                .collect();
            assert_eq!(mine, (0..40).collect::<Vec<_>>());
        }
    }
}

#[test]
fn kill_9_during_bursts_loses_no_record_of_an_effect() {
    let t = Tmp::new("kill");
    for round in 0..10u64 {
        let mut kids: Vec<Child> = (0..3).map(|_| spawn_appender(&t.0, None)).collect();
        // Wait until every appender is under way, then kill them one by one
        // at staggered moments (not a timing assertion: only where the
        // kills land varies).
        let deadline = Instant::now() + Duration::from_secs(60);
        while kids.iter().any(|k| !t.0.join(format!("effects.{}", k.id())).metadata().is_ok_and(|m| m.len() > 0)) {
            assert!(Instant::now() < deadline, "appenders did not start");
            for k in &mut kids {
                assert!(k.try_wait().unwrap().is_none(), "appender {} died before it was killed", k.id());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        for (n, k) in kids.iter_mut().enumerate() {
            std::thread::sleep(Duration::from_micros(300 + 700 * ((round * 3 + n as u64) % 7)));
            k.kill().unwrap();
            k.wait().unwrap();
        }
        // After each round the log must verify (a crash leaves notes at most).
        let rep = verify(&t.0);
        assert!(rep.ok(), "round {round}: {rep:?}");
    }
    let recorded = |kind: &str| -> BTreeSet<(u64, u64)> {
        records(&t.0)
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.data["pid"].as_u64().unwrap(), r.data["i"].as_u64().unwrap()))
            .collect()
    };
    let recovered = records(&t.0).iter().filter(|r| r.kind == "recovered").count();
    eprintln!("{} records, {recovered} recovered", records(&t.0).len());
    let happened = effects(&t.0, "effects");
    assert!(happened.len() >= 30, "too few effects to mean anything: {}", happened.len());
    let missing: Vec<_> = happened.difference(&recorded("exec")).copied().collect();
    assert!(missing.is_empty(), "effects without an audit record: {missing:?}");
    // Every after-record whose append returned survived the kill.
    let ended = effects(&t.0, "ends");
    assert!(ended.len() >= 30, "too few after-records to mean anything: {}", ended.len());
    let lost: Vec<_> = ended.difference(&recorded("exec_end")).copied().collect();
    assert!(lost.is_empty(), "after-records lost to a kill: {lost:?}");

    // One more append repairs whatever the last kill left, and the log is clean.
    AuditLog::open(&StatePaths::new(&t.0), None).unwrap().append(None, "check", json!({})).unwrap();
    let rep = verify(&t.0);
    assert!(rep.ok() && rep.notes.is_empty(), "{rep:?}");
}
