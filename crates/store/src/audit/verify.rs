//! `verify`: recompute the chain from the first record and compare its end
//! with the head in the store (and the head's signature with the key).

use super::{lock_file, log_name, AuditError, AuditHead, PastHead, Record, SigningKey, GENESIS};
use crate::Store;
use nix::fcntl::FlockArg;
use std::fs::File;
use std::io::{BufRead as _, Read as _};
use std::path::Path;

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line of the log (from 1), when the problem is at a line.
    pub line: Option<u64>,
    /// Seq of the record at fault, when known.
    pub seq: Option<u64>,
    /// What is wrong, in one line.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.seq) {
            (Some(l), Some(s)) => write!(f, "line {l} (seq {s}): {}", self.what),
            (Some(l), None) => write!(f, "line {l}: {}", self.what),
            (None, Some(s)) => write!(f, "seq {s}: {}", self.what),
            (None, None) => f.write_str(&self.what),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Complete lines read (up to the first problem).
    pub lines: u64,
    /// The last valid record (seq, hash).
    pub last: Option<(u64, String)>,
    /// The head in the store.
    pub head: Option<AuditHead>,
    /// Whether the head's signature was checked and is good.
    pub signed: bool,
    /// Things that are not tampering but worth saying (a crashed writer's
    /// traces, a signature that could not be checked).
    pub notes: Vec<String>,
    /// The first problem; `None`: the log is intact.
    pub problem: Option<Problem>,
}

impl Report {
    /// Whether the log verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Check the log at `log` against its head in `store`; with `key`, the
/// head's signature too. `Err` only when the check could not be run (I/O,
/// the database); a bad log is an `Ok` report with a [`Problem`].
///
/// Detected: an edited record (its hash), a deleted, inserted or moved one
/// (seq and prev), lines that are not canonical records, records missing at
/// the end (the head is ahead of the log, or on another hash), a missing or
/// replaced head, and with a key a head (hence chain) not signed by it.
pub fn verify(log: &Path, store: &Store, key: Option<&SigningKey>) -> Result<Report, AuditError> {
    let name = log_name(log)?;
    let io = |op| move |source| AuditError::Io { path: log.to_path_buf(), op, source };
    // Head and file size are read together under a shared lock, so no append
    // falls between them; the bytes below that size never change after, so
    // the long read needs no lock (and blocks no writer).
    let (file, size, head) = match File::open(log) {
        Ok(f) => {
            let lock = lock_file(&f, FlockArg::LockShared, log)?;
            let size = f.metadata().map_err(io("stat"))?.len();
            let head = store.audit_head(&name)?;
            drop(lock);
            (Some(f), size, head)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0, store.audit_head(&name)?),
        Err(e) => return Err(io("open")(e)),
    };
    let mut rep = Report { lines: 0, last: None, head: head.clone(), signed: false, notes: Vec::new(), problem: None };
    if file.is_none() && head.is_some() {
        rep.problem =
            Some(Problem { line: None, seq: None, what: "the log file is missing but the store has its head".into() });
        return Ok(rep);
    }
    let mut hash_at_head: Option<String> = None;
    let mut prev_hash = GENESIS.to_string();
    let mut torn = 0usize;
    let mut past = PastHead::default();
    let mut ordinary_after = None;
    if let Some(f) = file {
        let mut r = std::io::BufReader::with_capacity(64 * 1024, f.take(size));
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf).map_err(io("read"))? == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                torn = buf.len();
                break;
            }
            let line_no = rep.lines + 1;
            let expect = rep.last.as_ref().map_or(1, |(s, _)| s + 1);
            match check_line(&buf[..buf.len() - 1], expect, &prev_hash) {
                Ok(rec) => {
                    rep.lines = line_no;
                    let h_seq = head.as_ref().map_or(0, |h| h.seq);
                    if ordinary_after.is_none() && rec.seq > h_seq && past.see(&rec).is_err() {
                        ordinary_after = Some((line_no, rec.seq));
                    }
                    if head.as_ref().is_some_and(|h| h.seq == rec.seq) {
                        hash_at_head = Some(rec.hash.clone());
                    }
                    prev_hash = rec.hash.clone();
                    rep.last = Some((rec.seq, rec.hash));
                }
                Err((seq, what)) => {
                    rep.problem = Some(Problem { line: Some(line_no), seq, what });
                    return Ok(rep);
                }
            }
        }
    }
    check_end(&mut rep, hash_at_head, torn, ordinary_after, &past);
    if rep.problem.is_none() {
        check_signature(&mut rep, &name, key);
    }
    Ok(rep)
}

/// One line against the chain so far: `Err((seq if known, what))`.
fn check_line(line: &[u8], expect: u64, prev: &str) -> Result<Record, (Option<u64>, String)> {
    let rec = Record::parse_line(line).map_err(|e| (None, format!("not a valid record: {e}")))?;
    let seq = Some(rec.seq);
    if rec.seq != expect {
        let what = if rec.seq > expect {
            format!("seq {} where {expect} was expected: record(s) deleted before it, or moved", rec.seq)
        } else {
            format!("seq {} where {expect} was expected: a record inserted, repeated or moved", rec.seq)
        };
        return Err((seq, what));
    }
    if rec.prev != prev {
        return Err((
            seq,
            "prev does not match the hash of the record before it (inserted, moved, or the one before was rewritten)"
                .into(),
        ));
    }
    match rec.compute_hash() {
        Ok(h) if h == rec.hash => Ok(rec),
        Ok(_) => Err((seq, "hash does not match the record's contents (edited)".into())),
        Err(e) => Err((seq, format!("not a valid record: {e}"))),
    }
}

/// The chain's end against the head in the store. `ordinary_after`: the
/// first record (line, seq) past the head that neither a pending
/// after-record nor a crash explains; `past`: what the records past the head are.
fn check_end(
    rep: &mut Report,
    hash_at_head: Option<String>,
    torn: usize,
    ordinary_after: Option<(u64, u64)>,
    past: &PastHead,
) {
    let h_seq = rep.head.as_ref().map_or(0, |h| h.seq);
    let problem = |line: Option<u64>, seq: Option<u64>, what: String| Some(Problem { line, seq, what });
    match (rep.last.clone(), rep.head.clone()) {
        (None, None) => {}
        (None, Some(h)) => {
            rep.problem = problem(
                None,
                None,
                format!("the log has no records but the store's head is seq {} (truncated)", h.seq),
            );
        }
        (Some((s, _)), Some(h)) if h.seq > s => {
            rep.problem = problem(
                None,
                None,
                format!(
                    "the log ends at seq {s} (line {}) but the store's head is seq {}: records {}..={} are missing (truncated)",
                    rep.lines,
                    h.seq,
                    s + 1,
                    h.seq
                ),
            );
        }
        (Some((s, _)), Some(h)) if hash_at_head.as_deref() != Some(h.hash.as_str()) => {
            rep.problem = problem(
                None,
                Some(h.seq),
                format!(
                    "the store's head has hash {} but the log's record has {} (head replaced, or the log rewritten up to seq {s})",
                    h.hash,
                    hash_at_head.as_deref().unwrap_or("?")
                ),
            );
        }
        (Some((s, _)), head) if s > h_seq => match (ordinary_after, head) {
            (Some(_), None) => {
                rep.problem = problem(
                    None,
                    None,
                    format!("the log ends at seq {s} but the store has no head for it (head removed)"),
                );
            }
            (Some((line, seq)), Some(_)) => {
                rep.problem = problem(
                    Some(line),
                    Some(seq),
                    format!(
                        "the store's head is seq {h_seq} but the log goes on to seq {s}: records were appended behind the store's back"
                    ),
                );
            }
            (None, _) => {
                let which = |(a, b): (u64, u64), one: &str, many: &str| match a == b {
                    true => format!("record seq {a} {one}"),
                    false => format!("records seq {a}..={b} {many}"),
                };
                if let Some(p) = past.pending {
                    rep.notes.push(format!(
                        "{} written after {} effects, not yet confirmed by the store's head (the next append does; until then they are not covered by it)",
                        which(p, "is", "are"),
                        if p.0 == p.1 { "its" } else { "their" }
                    ));
                }
                if let Some(u) = past.unconfirmed {
                    rep.notes.push(format!(
                        "{} unconfirmed: a writer died before the store's head moved (their effects did not happen; the next append records this)",
                        which(u, "is", "are")
                    ));
                }
            }
        },
        (Some(_), _) => {}
    }
    if torn > 0 && rep.problem.is_none() {
        rep.notes.push(format!(
            "a torn last line of {torn} bytes after line {}: a writer died mid-append (its effect did not happen; the next append cuts it and records this)",
            rep.lines
        ));
    }
}

/// The head's signature against `key`.
fn check_signature(rep: &mut Report, name: &str, key: Option<&SigningKey>) {
    let Some(h) = rep.head.clone() else {
        if key.is_some() && rep.last.is_some() {
            rep.problem = Some(Problem { line: None, seq: None, what: "no signed head in the store".into() });
        }
        return;
    };
    match (key, &h.mac) {
        (Some(k), Some(mac)) if k.check(name, h.seq, &h.hash, mac) => rep.signed = true,
        (Some(k), Some(_)) if h.key_id.as_deref() != Some(k.id()) => {
            rep.problem = Some(Problem {
                line: None,
                seq: Some(h.seq),
                what: format!(
                    "the head is signed with key {} but the given key is {}",
                    h.key_id.as_deref().unwrap_or("?"),
                    k.id()
                ),
            });
        }
        (Some(_), Some(_)) => {
            rep.problem = Some(Problem {
                line: None,
                seq: Some(h.seq),
                what: "the head's signature is not valid: the head or the chain was forged".into(),
            });
        }
        (Some(_), None) => {
            rep.problem = Some(Problem {
                line: None,
                seq: Some(h.seq),
                what: "the head is not signed, but a signing key was given: the head or the chain was forged".into(),
            });
        }
        (None, Some(_)) => rep.notes.push(format!(
            "the head is signed (key {}); set {} to check the signature",
            h.key_id.as_deref().unwrap_or("?"),
            super::KEY_FILE_ENV
        )),
        (None, None) => {}
    }
}
