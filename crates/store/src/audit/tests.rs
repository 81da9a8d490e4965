//! The audit log against each kind of tampering, and its crash recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tests::Tmp;
use serde_json::json;
use std::sync::Arc;

struct Fx {
    _dir: Tmp,
    paths: StatePaths,
}

impl Fx {
    fn new(tag: &str) -> Fx {
        let dir = Tmp::new(tag);
        let paths = StatePaths::new(&dir.0);
        Fx { _dir: dir, paths }
    }
    fn log(&self, key: Option<SigningKey>) -> AuditLog {
        AuditLog::open(&self.paths, key).unwrap()
    }
    /// A log of `n` exec-like records.
    fn filled(tag: &str, n: u64, key: Option<SigningKey>) -> Fx {
        let fx = Fx::new(tag);
        let log = fx.log(key);
        for i in 1..=n {
            let r = log.append(Some("t1"), "exec", json!({"argv": ["echo", i.to_string()], "n": i})).unwrap();
            assert_eq!(r.seq, i);
        }
        fx
    }
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.paths.audit).unwrap().lines().map(str::to_string).collect()
    }
    fn set_lines(&self, lines: &[String]) {
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        std::fs::write(&self.paths.audit, text).unwrap();
    }
    fn store(&self) -> Store {
        Store::open(&self.paths.db).unwrap()
    }
    fn verify(&self, key: Option<&SigningKey>) -> Report {
        verify(&self.paths.audit, &self.store(), key).unwrap()
    }
    /// Verify, expecting a problem; returns it.
    fn problem(&self, key: Option<&SigningKey>) -> Problem {
        let rep = self.verify(key);
        match rep.problem.clone() {
            Some(p) => p,
            None => panic!("verified, but should not have: {rep:?}"),
        }
    }
}

fn parse(line: &str) -> Record {
    Record::parse_line(line.as_bytes()).unwrap()
}

/// `rec` with a fresh hash, as its line.
fn rehash(mut rec: Record) -> String {
    rec.hash = rec.compute_hash().unwrap();
    rec.to_line().unwrap().trim_end().to_string()
}

#[test]
fn an_untampered_log_verifies() {
    let fx = Fx::filled("ok", 20, None);
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.lines, 20);
    assert_eq!(rep.last.as_ref().map(|l| l.0), Some(20));
    assert_eq!(rep.head.as_ref().map(|h| h.seq), Some(20));
    assert!(rep.notes.is_empty(), "{:?}", rep.notes);
    // Reopening continues the same chain.
    let r = fx.log(None).append(None, "sandbox_stop", json!({"sandbox": "s"})).unwrap();
    assert_eq!((r.seq, r.prev.as_str()), (21, rep.last.unwrap().1.as_str()));
    assert!(fx.verify(None).ok());
}

#[test]
fn an_empty_state_verifies_as_empty() {
    let fx = Fx::new("empty");
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.lines == 0 && rep.last.is_none(), "{rep:?}");
}

#[test]
fn an_edited_field_is_caught_at_its_record() {
    let fx = Fx::filled("edit", 10, None);
    let mut lines = fx.lines();
    lines[4] = lines[4].replace("\"echo\"", "\"rm\"");
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(5), Some(5)), "{p}");
    assert!(p.what.contains("edited"), "{p}");
}

#[test]
fn an_edited_and_rehashed_record_is_caught_at_the_next_one() {
    let fx = Fx::filled("rehash", 10, None);
    let mut lines = fx.lines();
    let mut rec = parse(&lines[4]);
    rec.data = json!({"argv": ["rm", "-rf", "/"]});
    lines[4] = rehash(rec);
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(6), Some(6)), "{p}");
    assert!(p.what.contains("prev does not match"), "{p}");
}

#[test]
fn a_deleted_line_is_caught() {
    let fx = Fx::filled("delete", 10, None);
    let mut lines = fx.lines();
    lines.remove(4);
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(5), Some(6)), "{p}");
    assert!(p.what.contains("deleted"), "{p}");
}

#[test]
fn an_inserted_line_is_caught() {
    let fx = Fx::filled("insert", 10, None);
    let mut lines = fx.lines();
    // A forged record that chains onto record 4 correctly; record 5 then
    // follows it with a seq and prev that no longer fit.
    let four = parse(&lines[3]);
    let forged = Record::new(5, four.ts.clone(), Some("t1"), "exec", json!({"argv": ["true"]}), &four.hash).unwrap();
    lines.insert(4, forged.to_line().unwrap().trim_end().to_string());
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(6), Some(5)), "{p}");
    assert!(p.what.contains("inserted"), "{p}");
}

#[test]
fn swapped_lines_are_caught() {
    let fx = Fx::filled("swap", 10, None);
    let mut lines = fx.lines();
    lines.swap(4, 5);
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(5), Some(6)), "{p}");
}

#[test]
fn truncation_is_caught_by_the_head_in_the_store() {
    let fx = Fx::filled("truncate", 20, None);
    let mut lines = fx.lines();
    lines.truncate(14);
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert!(p.what.contains("truncated") && p.what.contains("15..=20"), "{p}");
}

#[test]
fn a_removed_last_line_is_caught() {
    let fx = Fx::filled("lastline", 5, None);
    let mut lines = fx.lines();
    lines.pop();
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert!(p.what.contains("5..=5"), "{p}");
}

#[test]
fn a_log_cut_mid_line_is_caught_not_taken_for_a_crash() {
    let fx = Fx::filled("cut", 5, None);
    let text = std::fs::read(&fx.paths.audit).unwrap();
    std::fs::write(&fx.paths.audit, &text[..text.len() - 40]).unwrap();
    let p = fx.problem(None);
    assert!(p.what.contains("truncated"), "{p}");
    // And appends refuse to paper over it.
    let err = fx.log(None).append(None, "exec", json!({})).unwrap_err();
    assert!(matches!(err, AuditError::Inconsistent { .. }), "{err}");
}

#[test]
fn a_deleted_log_file_is_caught() {
    let fx = Fx::filled("nofile", 3, None);
    std::fs::remove_file(&fx.paths.audit).unwrap();
    assert!(fx.problem(None).what.contains("missing"));
}

#[test]
fn a_reformatted_line_is_caught() {
    let fx = Fx::filled("format", 4, None);
    let mut lines = fx.lines();
    lines[1] = lines[1].replacen(",\"ts\"", ", \"ts\"", 1);
    fx.set_lines(&lines);
    let p = fx.problem(None);
    assert_eq!(p.line, Some(2), "{p}");
    assert!(p.what.contains("canonical"), "{p}");
}

#[test]
fn a_tampered_store_head_is_caught() {
    let fx = Fx::filled("head", 6, None);
    let s = fx.store();
    let set = |sql: &str| s.conn().execute(sql, []).unwrap();

    set("UPDATE audit_head SET hash = 'ff' || substr(hash, 3)");
    let p = fx.problem(None);
    assert_eq!(p.seq, Some(6), "{p}");
    assert!(p.what.contains("head replaced"), "{p}");

    let good = parse(&fx.lines()[5]).hash;
    set(&format!("UPDATE audit_head SET hash = '{good}', seq = 9"));
    assert!(fx.problem(None).what.contains("truncated"));

    let four = parse(&fx.lines()[3]).hash;
    set(&format!("UPDATE audit_head SET hash = '{four}', seq = 4"));
    let p = fx.problem(None);
    assert!(p.what.contains("behind the store's back"), "{p}");

    set("DELETE FROM audit_head");
    assert!(fx.problem(None).what.contains("no head"));
}

#[test]
fn appends_refuse_when_the_end_does_not_match_the_head() {
    let fx = Fx::filled("refuse", 6, None);
    let mut lines = fx.lines();
    lines.truncate(3);
    fx.set_lines(&lines);
    let before = std::fs::read(&fx.paths.audit).unwrap();
    let err = fx.log(None).append(None, "exec", json!({})).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(std::fs::read(&fx.paths.audit).unwrap(), before, "a refused append changed the log");
}

#[test]
fn a_forged_rehashed_chain_fails_the_signature() {
    let key = SigningKey::for_test(1);
    let fx = Fx::filled("forge", 8, Some(key.clone()));
    let rep = fx.verify(Some(&key));
    assert!(rep.ok() && rep.signed, "{rep:?}");

    // Rewrite record 3 and re-hash everything after it; move the store's
    // head to the forged end (the attacker lacks the key for the MAC).
    let mut lines = fx.lines();
    let mut prev = parse(&lines[1]).hash;
    for line in lines.iter_mut().skip(2) {
        let mut rec = parse(line);
        if rec.seq == 3 {
            rec.data = json!({"argv": ["echo", "nothing to see"]});
        }
        rec.prev = prev.clone();
        *line = rehash(rec);
        prev = parse(line).hash;
    }
    fx.set_lines(&lines);
    fx.store().conn().execute("UPDATE audit_head SET hash = ?1", [&prev]).unwrap();

    // The chain itself is consistent, so only the signature can tell.
    let unchecked = fx.verify(None);
    assert!(unchecked.ok(), "{unchecked:?}");
    assert!(unchecked.notes.iter().any(|n| n.contains("CLAWCAGE_AUDIT_KEY_FILE")), "{:?}", unchecked.notes);
    let p = fx.problem(Some(&key));
    assert_eq!(p.seq, Some(8), "{p}");
    assert!(p.what.contains("forged"), "{p}");

    // Stripping the MAC does not help either.
    fx.store().conn().execute("UPDATE audit_head SET mac = NULL, key_id = NULL", []).unwrap();
    assert!(fx.problem(Some(&key)).what.contains("not signed"));
    // And a keyed writer will not sign on top of it.
    let err = fx.log(Some(key)).append(None, "exec", json!({})).unwrap_err();
    assert!(err.to_string().contains("not signed"), "{err}");
}

#[test]
fn another_key_is_named_as_such() {
    let fx = Fx::filled("otherkey", 2, Some(SigningKey::for_test(1)));
    let p = fx.problem(Some(&SigningKey::for_test(2)));
    assert!(p.what.contains("signed with key"), "{p}");
}

#[test]
fn a_torn_tail_is_a_note_then_repaired_with_a_recovered_record() {
    let fx = Fx::filled("torn", 3, None);
    // A writer died in the middle of its line.
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(b"{\"seq\":4,\"ts\":\"2025-").unwrap();
    drop(f);
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert!(rep.notes.iter().any(|n| n.contains("torn last line of 20 bytes")), "{:?}", rep.notes);

    let r = fx.log(None).append(Some("t2"), "exec", json!({"argv": ["ls"]})).unwrap();
    assert_eq!(r.seq, 5);
    let lines = fx.lines();
    let recovered = parse(&lines[3]);
    assert_eq!((recovered.seq, recovered.kind.as_str()), (4, "recovered"));
    assert_eq!(recovered.data["torn_bytes"], 20);
    assert_eq!(recovered.data["torn_text"], "{\"seq\":4,\"ts\":\"2025-");
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.is_empty(), "{rep:?}");
}

#[test]
fn an_unconfirmed_last_record_is_a_note_then_named_by_a_recovered_record() {
    let fx = Fx::filled("unconfirmed", 3, None);
    // Killed after the fsync, before the head moved: the line is there.
    let three = parse(&fx.lines()[2]);
    let four = Record::new(4, three.ts.clone(), None, "exec", json!({"argv": ["x"]}), &three.hash).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(four.to_line().unwrap().as_bytes()).unwrap();
    drop(f);
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert!(rep.notes.iter().any(|n| n.contains("seq 4 is unconfirmed")), "{:?}", rep.notes);

    let r = fx.log(None).append(None, "exec", json!({})).unwrap();
    assert_eq!(r.seq, 6);
    let recovered = parse(&fx.lines()[4]);
    assert_eq!(recovered.kind, "recovered");
    assert_eq!(recovered.data["unconfirmed_seq"], 4);
    assert_eq!(recovered.data["unconfirmed_hash"], four.hash.as_str());
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.is_empty(), "{rep:?}");
}

#[test]
fn the_first_append_dying_before_the_head_is_recovered() {
    let fx = Fx::new("first");
    let _ = fx.log(None); // creates the file and the database
    let one = Record::new(1, "2025-01-01T00:00:00.000000Z".into(), None, "exec", json!({}), GENESIS).unwrap();
    std::fs::write(&fx.paths.audit, one.to_line().unwrap()).unwrap();
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.iter().any(|n| n.contains("seq 1 is unconfirmed")), "{rep:?}");
    assert_eq!(fx.log(None).append(None, "exec", json!({})).unwrap().seq, 3);
    assert!(fx.verify(None).ok());
}

#[test]
fn threads_and_separate_handles_keep_one_chain() {
    let fx = Fx::new("threads");
    let shared = Arc::new(fx.log(None));
    let mut handles = Vec::new();
    for w in 0..4 {
        // Two threads share one AuditLog (the mutex); two have their own
        // (the flock, as between processes).
        let log = if w % 2 == 0 { shared.clone() } else { Arc::new(fx.log(None)) };
        handles.push(std::thread::spawn(move || {
            for i in 0..40 {
                log.append(None, "exec", json!({"w": w, "i": i})).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.lines, 160);
    for w in 0..4 {
        let mine: Vec<i64> = fx
            .lines()
            .iter()
            .map(|l| parse(l))
            .filter(|r| r.data["w"] == w)
            .map(|r| r.data["i"].as_i64().unwrap())
            .collect();
        assert_eq!(mine, (0..40).collect::<Vec<_>>());
    }
}

#[test]
fn bad_records_are_refused_before_anything_is_written() {
    let fx = Fx::new("bad");
    let log = fx.log(None);
    assert!(matches!(log.append(None, "Exec", json!({})), Err(AuditError::Format(_))));
    assert!(matches!(log.append(None, "exec", json!({"cost": 1.5})), Err(AuditError::Format(_))));
    assert!(matches!(log.append(None, "exec", json!("text")), Err(AuditError::Format(_))));
    assert_eq!(std::fs::metadata(&fx.paths.audit).unwrap().len(), 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&fx.paths.audit).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn export_and_line_reading_skip_a_torn_tail() {
    let fx = Fx::filled("export", 3, None);
    let full = std::fs::read(&fx.paths.audit).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(b"{\"seq\":4").unwrap();
    let mut out = Vec::new();
    export_lines(&fx.paths.audit, &mut out).unwrap();
    assert_eq!(out, full);
    let mut seen = Vec::new();
    for_each_line(&fx.paths.audit, |n, l| {
        seen.push((n, parse(std::str::from_utf8(l).unwrap()).seq));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [(1, 1), (2, 2), (3, 3)]);
}

#[test]
fn read_tail_finds_the_last_lines_across_chunks() {
    let fx = Fx::new("tail");
    let p = fx.paths.dir.join("f");
    let long = "x".repeat(40_000);
    std::fs::write(&p, format!("a\n{long}\nzz")).unwrap();
    let t = read_tail(&File::open(&p).unwrap(), 1).unwrap();
    assert_eq!(t.last, [long.as_bytes()]);
    assert_eq!(t.torn, b"zz");
    assert_eq!(t.complete_end, 2 + 40_001);
    let t = read_tail(&File::open(&p).unwrap(), 2).unwrap();
    assert_eq!(t.last, [b"a".as_slice(), long.as_bytes()]);
    let t = read_tail(&File::open(&p).unwrap(), 5).unwrap();
    assert_eq!(t.last.len(), 2);
    std::fs::write(&p, "only\n").unwrap();
    let t = read_tail(&File::open(&p).unwrap(), 1).unwrap();
    assert_eq!((t.last, t.torn.len(), t.complete_end), (vec![b"only".to_vec()], 0, 5));
    std::fs::write(&p, "").unwrap();
    assert_eq!(read_tail(&File::open(&p).unwrap(), 1).unwrap(), Tail::default());
}

#[test]
fn a_writer_dying_inside_a_recovery_is_recovered_too() {
    // Killed after writing record 4, then the next writer killed after
    // writing its `recovered` record 5: the head is still 3.
    let fx = Fx::filled("double", 3, None);
    let three = parse(&fx.lines()[2]);
    let four = Record::new(4, three.ts.clone(), None, "exec", json!({"argv": ["x"]}), &three.hash).unwrap();
    let five = Record::new(5, three.ts.clone(), None, "recovered", json!({"unconfirmed_seq": 4}), &four.hash).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(format!("{}{}", four.to_line().unwrap(), five.to_line().unwrap()).as_bytes()).unwrap();
    drop(f);
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert!(rep.notes.iter().any(|n| n.contains("4..=5")), "{:?}", rep.notes);
    assert_eq!(fx.log(None).append(None, "exec", json!({})).unwrap().seq, 7);
    let six = parse(&fx.lines()[5]);
    assert_eq!(
        (six.kind.as_str(), &six.data["unconfirmed_seq"], &six.data["unconfirmed_last"]),
        ("recovered", &json!(4), &json!(5))
    );
    assert!(fx.verify(None).ok());

    // But two ordinary records past the head are not a crash's doing.
    let fx = Fx::filled("double-forged", 3, None);
    let three = parse(&fx.lines()[2]);
    let four = Record::new(4, three.ts.clone(), None, "exec", json!({}), &three.hash).unwrap();
    let five = Record::new(5, three.ts.clone(), None, "exec", json!({}), &four.hash).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(format!("{}{}", four.to_line().unwrap(), five.to_line().unwrap()).as_bytes()).unwrap();
    drop(f);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(5), Some(5)), "{p}");
    assert!(p.what.contains("behind the store's back"), "{p}");
    let err = fx.log(None).append(None, "exec", json!({})).unwrap_err();
    assert!(err.to_string().contains("behind the store's back"), "{err}");
}

// --- After-records (group commit) -------------------------------------------

fn head_seq(fx: &Fx) -> u64 {
    fx.store().audit_head("audit.jsonl").unwrap().map_or(0, |h| h.seq)
}

#[test]
fn after_records_are_pending_until_the_next_append_confirms_them() {
    let fx = Fx::filled("after", 2, None);
    let log = fx.log(None);
    let a = log.append_after(Some("t1"), "exec_end", json!({"status": 0})).unwrap();
    let b = log.append_after(Some("t1"), "sandbox_stop", json!({})).unwrap();
    assert_eq!((a.seq, b.seq), (3, 4));
    assert_eq!(a.data[AFTER_KEY], true, "{a:?}");
    // Written at once (another reader sees the lines), the head not moved.
    assert_eq!(fx.lines().len(), 4);
    assert_eq!(head_seq(&fx), 2);
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert!(rep.notes.iter().any(|n| n.contains("records seq 3..=4 are written after their effects")), "{rep:?}");
    // The next durable append (here from another handle) confirms them in
    // its own sync and head commit, with no `recovered` record.
    let c = fx.log(None).append(Some("t2"), "exec", json!({})).unwrap();
    assert_eq!(c.seq, 5);
    assert_eq!(head_seq(&fx), 5);
    assert!(!fx.lines().iter().any(|l| parse(l).kind == "recovered"));
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.is_empty(), "{rep:?}");
    drop(log);
    assert_eq!(head_seq(&fx), 5, "nothing was pending on drop");
}

#[test]
fn flush_and_drop_confirm_pending_records() {
    let fx = Fx::filled("flush", 1, None);
    let log = fx.log(None);
    log.flush().unwrap(); // nothing pending: the head stays
    assert_eq!(head_seq(&fx), 1);
    log.append_after(None, "exec_end", json!({})).unwrap();
    log.flush().unwrap();
    assert_eq!(head_seq(&fx), 2);
    log.append_after(None, "sandbox_stop", json!({})).unwrap();
    assert_eq!(head_seq(&fx), 2);
    drop(log);
    assert_eq!(head_seq(&fx), 3);
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.is_empty() && rep.lines == 3, "{rep:?}");
}

#[test]
fn after_records_of_a_killed_writer_are_kept_and_confirmed_without_a_recovery() {
    let fx = Fx::filled("after-kill", 1, None);
    let log = fx.log(None);
    log.append_after(None, "exec_end", json!({"n": 1})).unwrap();
    log.append_after(None, "sandbox_stop", json!({})).unwrap();
    std::mem::forget(log); // as a kill -9: no flush, no drop
    assert_eq!(head_seq(&fx), 1);
    let r = fx.log(None).append(None, "exec", json!({})).unwrap();
    assert_eq!(r.seq, 4);
    let kinds: Vec<String> = fx.lines().iter().map(|l| parse(l).kind).collect();
    assert_eq!(kinds, ["exec", "exec_end", "sandbox_stop", "exec"]);
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.is_empty(), "{rep:?}");
}

#[test]
fn a_crash_after_pending_records_recovers_only_the_unconfirmed_one() {
    let fx = Fx::filled("after-crash", 1, None);
    let log = fx.log(None);
    let two = log.append_after(None, "exec_end", json!({})).unwrap();
    std::mem::forget(log);
    // Killed after the fsync of a durable record 3, before the head moved.
    let three = Record::new(3, two.ts.clone(), None, "exec", json!({"argv": ["x"]}), &two.hash).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(three.to_line().unwrap().as_bytes()).unwrap();
    drop(f);
    let rep = fx.verify(None);
    assert!(rep.ok(), "{rep:?}");
    assert!(rep.notes.iter().any(|n| n.contains("record seq 2 is written after its effect")), "{rep:?}");
    assert!(rep.notes.iter().any(|n| n.contains("record seq 3 is unconfirmed")), "{rep:?}");
    assert_eq!(fx.log(None).append(None, "exec", json!({})).unwrap().seq, 5);
    let four = parse(&fx.lines()[3]);
    assert_eq!((four.kind.as_str(), &four.data["unconfirmed_seq"]), ("recovered", &json!(3)));
    let rep = fx.verify(None);
    assert!(rep.ok() && rep.notes.is_empty(), "{rep:?}");
}

#[test]
fn an_after_record_past_an_unconfirmed_one_is_no_crash() {
    let fx = Fx::filled("after-forged", 1, None);
    let one = parse(&fx.lines()[0]);
    let two = Record::new(2, one.ts.clone(), None, "exec", json!({}), &one.hash).unwrap();
    let three = Record::new(3, one.ts.clone(), None, "exec_end", json!({ AFTER_KEY: true }), &two.hash).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&fx.paths.audit).unwrap();
    f.write_all(format!("{}{}", two.to_line().unwrap(), three.to_line().unwrap()).as_bytes()).unwrap();
    drop(f);
    let p = fx.problem(None);
    assert_eq!((p.line, p.seq), (Some(3), Some(3)), "{p}");
    assert!(p.what.contains("behind the store's back"), "{p}");
    let err = fx.log(None).append_after(None, "exec_end", json!({})).unwrap_err();
    assert!(err.to_string().contains("behind the store's back"), "{err}");
}

#[test]
fn durable_appends_may_not_claim_to_be_after_records() {
    let fx = Fx::new("after-reserved");
    let err = fx.log(None).append(None, "exec", json!({ AFTER_KEY: true })).unwrap_err();
    assert!(matches!(err, AuditError::Format(_)), "{err}");
    assert!(matches!(fx.log(None).append_after(None, "exec_end", json!("text")), Err(AuditError::Format(_))));
    assert_eq!(fx.lines().len(), 0);
}

#[test]
fn many_after_records_confirm_themselves() {
    let fx = Fx::filled("after-many", 1, None);
    let log = fx.log(None);
    for _ in 0..MAX_PENDING {
        log.append_after(None, "tick", json!({})).unwrap();
    }
    assert_eq!(head_seq(&fx), 1 + MAX_PENDING, "the 64th pending record confirms them all");
    std::mem::forget(log);
}

#[test]
fn signed_heads_cover_confirmed_after_records() {
    let fx = Fx::new("after-signed");
    let key = SigningKey::for_test(3);
    let log = fx.log(Some(key.clone()));
    log.append(None, "exec", json!({})).unwrap();
    log.append_after(None, "exec_end", json!({})).unwrap();
    log.flush().unwrap();
    let rep = fx.verify(Some(&key));
    assert!(rep.ok() && rep.signed && rep.notes.is_empty() && rep.lines == 2, "{rep:?}");
}
