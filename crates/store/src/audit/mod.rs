//! The tamper-evident audit log: `audit.jsonl`, one JSON record per line,
//! each carrying the SHA-256 of the one before ([`record`] defines the line
//! and the hash exactly), with the head (last seq and hash, optionally
//! signed) also kept in the store so that a log cut short is detected.
//!
//! # Durability
//! [`AuditLog::append`] returns only once the record is on disk: under a
//! mutex (threads) and an exclusive `flock` on the log (processes), it reads
//! the log's current end, writes the line, `fdatasync`s the file, and then
//! moves the head in the store (SQLite with `synchronous=FULL`). A caller
//! that gets `Err` must not let the effect happen.
//!
//! # Crashes
//! A writer killed mid-append leaves one of two traces, both handled by the
//! next append (under the lock) with a `recovered` record that says what it
//! found, and reported by [`verify()`] as notes until then:
//! - a *torn tail*: bytes after the last newline (a line cut short). They
//!   are cut off and their length, SHA-256 and text go into the `recovered`
//!   record. Cutting them is safe: that append never returned, so its
//!   effect never happened. (A second crash between the cut and the
//!   `recovered` record loses only that never-returned fragment.)
//! - an *unconfirmed record*: the line is complete but the head in the store
//!   is behind it (killed between the fsync and the head update). The
//!   record stays; `recovered` names it as unconfirmed, i.e. its append did
//!   not return and its effect did not happen. A writer killed the same way
//!   while writing that `recovered` record leaves the head two behind, and
//!   so on: past the head, the first record may be anything and the rest
//!   must be `recovered` records.
//!
//! Anything else (the head ahead of the log, on a different hash, an
//! ordinary record past the head's successor, or a bad last record) is
//! tampering or damage: appends are refused (fail closed) and `verify`
//! names the first bad record.
//!
//! # Limits
//! Without a signing key, whoever can write the state directory can rewrite
//! the log *and* the head consistently; with one ([`SigningKey`]) they
//! cannot, but they can still roll both back to an older signed state.
//! Export the log to a SIEM ([`export_lines`]) to close that.

mod head;
pub mod record;
pub mod sign;
mod verify;

pub use head::AuditHead;
pub use record::{FormatError, Record, GENESIS};
pub use sign::{SigningKey, KEY_FILE_ENV};
pub use verify::{verify, Problem, Report};

use crate::error::StoreError;
use crate::{time, Durability, StatePaths, Store};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the audit log could not be written, read or checked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store (head) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation on the log failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The record cannot be written as asked (bad kind, data not an object, a float).
    #[error("audit record: {0}")]
    Format(#[from] FormatError),
    /// The log's end disagrees with the head in the store, or its last
    /// record is invalid: tampering or damage. Appends are refused.
    #[error("{}: {detail}; refusing to append (see `clawcage audit verify`)", path.display())]
    Inconsistent {
        /// The log file.
        path: PathBuf,
        /// What disagrees.
        detail: String,
    },
    /// The signing key could not be used.
    #[error("audit signing key {}: {detail}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A thread panicked while appending; the log's state in this process is unknown.
    #[error("audit log lock poisoned by a panic")]
    Poisoned,
}

type Result<T> = std::result::Result<T, AuditError>;

/// The audit log of one state directory. Cheap to share between threads
/// (`Arc<AuditLog>`); several processes may append to the same file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    name: String,
    key: Option<SigningKey>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    store: Store,
}

/// The end of the chain: the record the next one follows.
struct End {
    seq: u64,
    hash: String,
}

impl AuditLog {
    /// Open the log of a state directory (`audit.jsonl`, head in
    /// `clawcage.db`), creating them if missing. With `key`, every head is
    /// signed, and appending on top of a head that this key did not sign is
    /// refused.
    pub fn open(paths: &StatePaths, key: Option<SigningKey>) -> Result<AuditLog> {
        AuditLog::open_at(&paths.audit, &paths.db, key)
    }

    /// Open the log at `log` with its head in the database at `db`.
    pub fn open_at(log: &Path, db: &Path, key: Option<SigningKey>) -> Result<AuditLog> {
        let io = |op| {
            let path = log.to_path_buf();
            move |source| AuditError::Io { path, op, source }
        };
        let name = log_name(log)?;
        let file = open_log(log).map_err(io("open"))?;
        let store = Store::open_with(db, Durability::Full)?;
        Ok(AuditLog { path: log.to_path_buf(), name, key, inner: Mutex::new(Inner { file, store }) })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record of `kind` with `data` (a JSON object) for `task`;
    /// returns once it is durable (see the module docs). On `Err` nothing
    /// may rely on the record: refuse the effect it describes.
    pub fn append(&self, task: Option<&str>, kind: &str, data: Value) -> Result<Record> {
        let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let _lock = self.lock(&inner.file, FlockArg::LockExclusive)?;
        let end = self.reconcile(&inner)?;
        let rec = Record::new(end.seq + 1, time::rfc3339_micros(time::now_micros()), task, kind, data, &end.hash)?;
        self.write(&inner, &rec)?;
        Ok(rec)
    }

    /// Take `flock(mode)` on a duplicate of `file` (the lock belongs to the
    /// shared open file description; dropping the guard releases it).
    fn lock(&self, file: &File, mode: FlockArg) -> Result<Flock<File>> {
        lock_file(file, mode, &self.path)
    }

    /// Write `rec`, fsync, then move the head (signed when we have a key).
    fn write(&self, inner: &Inner, rec: &Record) -> Result<()> {
        let line = rec.to_line()?;
        let io = |op| {
            let path = self.path.clone();
            move |source| AuditError::Io { path, op, source }
        };
        (&inner.file).write_all(line.as_bytes()).map_err(io("write"))?;
        inner.file.sync_data().map_err(io("fdatasync"))?;
        let mac = self.key.as_ref().map(|k| (k.sign(&self.name, rec.seq, &rec.hash), k.id().to_string()));
        inner.store.advance_audit_head(
            &self.name,
            rec.seq,
            &rec.hash,
            mac.as_ref().map(|(m, i)| (m.as_str(), i.as_str())),
        )?;
        Ok(())
    }

    /// Under the exclusive lock: check the log's end against the head, repair
    /// what a crashed writer left (module docs), and return the chain's end.
    fn reconcile(&self, inner: &Inner) -> Result<End> {
        let bad = |detail: String| AuditError::Inconsistent { path: self.path.clone(), detail };
        let io = |source| AuditError::Io { path: self.path.clone(), op: "read the end of the log", source };
        let tail = read_tail(&inner.file, 1).map_err(io)?;
        let head = inner.store.audit_head(&self.name)?;
        if let (Some(key), Some(h)) = (&self.key, &head) {
            let signed = h.mac.as_deref().is_some_and(|m| key.check(&self.name, h.seq, &h.hash, m));
            if !signed {
                return Err(bad(format!("the head in the store (seq {}) is not signed by key {}", h.seq, key.id())));
            }
        }
        let (h_seq, h_hash) = head.as_ref().map_or((0, GENESIS), |h| (h.seq, h.hash.as_str()));
        let last = match tail.last.last() {
            Some(line) => Some(Record::parse_line(line).map_err(|e| bad(format!("last record: {e}")))?),
            None => None,
        };
        // How the log's last complete record relates to the head: equal, or
        // ahead by records whose appends never returned.
        let unconfirmed = match &last {
            None if h_seq == 0 => None,
            None => return Err(bad(format!("the log has no records but the head is seq {h_seq}"))),
            Some(r) if r.seq < h_seq => {
                return Err(bad(format!("the log ends at seq {} but the head is seq {h_seq} (truncated)", r.seq)))
            }
            Some(r) if r.seq == h_seq && r.hash == h_hash && r.compute_hash()? == r.hash => None,
            Some(r) if r.seq == h_seq => {
                return Err(bad(format!("the log's seq {} ({}) is not the head's ({h_hash})", r.seq, r.hash)))
            }
            Some(r) => {
                let lag = r.seq - h_seq;
                if lag > MAX_UNCONFIRMED {
                    return Err(bad(format!("the log ends at seq {} but the head is seq {h_seq}", r.seq)));
                }
                let lines = read_tail(&inner.file, lag as usize).map_err(io)?.last;
                Some(check_unconfirmed(&lines, h_seq, h_hash).map_err(bad)?)
            }
        };
        let mut end = match &last {
            Some(r) => End { seq: r.seq, hash: r.hash.clone() },
            None => End { seq: 0, hash: GENESIS.to_string() },
        };
        if tail.torn.is_empty() && unconfirmed.is_none() {
            return Ok(end);
        }
        let mut data = serde_json::Map::new();
        let mut why = Vec::new();
        if !tail.torn.is_empty() {
            // Cut the torn line off before the next record starts a line.
            inner.file.set_len(tail.complete_end).map_err(|source| AuditError::Io {
                path: self.path.clone(),
                op: "cut a torn last line",
                source,
            })?;
            data.insert("torn_bytes".into(), json!(tail.torn.len()));
            data.insert("torn_sha256".into(), json!(crate::sha256_hex(&tail.torn)));
            data.insert("torn_text".into(), json!(String::from_utf8_lossy(&tail.torn)));
            why.push(format!("cut a torn line of {} bytes after seq {}", tail.torn.len(), end.seq));
        }
        if let Some((first, r)) = unconfirmed {
            data.insert("unconfirmed_seq".into(), json!(first));
            data.insert("unconfirmed_last".into(), json!(r.seq));
            data.insert("unconfirmed_hash".into(), json!(r.hash));
            why.push(match first == r.seq {
                true => format!("record seq {first} was written but its append never returned"),
                false => format!("records seq {first}..={} were written but their appends never returned", r.seq),
            });
        }
        data.insert(
            "reason".into(),
            json!(format!("a writer died mid-append: {}; the effects of those records did not happen", why.join("; "))),
        );
        let rec = Record::new(
            end.seq + 1,
            time::rfc3339_micros(time::now_micros()),
            None,
            "recovered",
            Value::Object(data),
            &end.hash,
        )?;
        self.write(inner, &rec)?;
        end = End { seq: rec.seq, hash: rec.hash };
        Ok(end)
    }
}

/// The log's name in the store: its file name.
fn log_name(log: &Path) -> Result<String> {
    log.file_name().and_then(|n| n.to_str()).map(str::to_string).ok_or_else(|| AuditError::Io {
        path: log.to_path_buf(),
        op: "name",
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })
}

/// Open (or create, mode 0600, making its directory entry durable) the log
/// for appending.
fn open_log(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).append(true).mode(0o600);
    match opts.clone().create_new(true).open(path) {
        Ok(f) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => opts.open(path),
        Err(e) => Err(e),
    }
}

/// `flock(mode)` on a duplicate of `file`, retrying on EINTR.
pub(crate) fn lock_file(file: &File, mode: FlockArg, path: &Path) -> Result<Flock<File>> {
    let io = |source| AuditError::Io { path: path.to_path_buf(), op: "flock", source };
    let mut dup = file.try_clone().map_err(io)?;
    loop {
        match Flock::lock(dup, mode) {
            Ok(l) => return Ok(l),
            Err((f, nix::errno::Errno::EINTR)) => dup = f,
            Err((_, e)) => return Err(io(e.into())),
        }
    }
}

/// Most records a log may be ahead of its head by crashes alone: each crash
/// inside a recovery adds one.
const MAX_UNCONFIRMED: u64 = 1000;

/// `lines`, the last complete lines of the log, are the records after the
/// head (`h_seq`, `h_hash`): a valid chain from the head, the first
/// anything, the rest `recovered` records (each written by a writer that
/// died while repairing the one before). Returns (first seq, last record).
fn check_unconfirmed(lines: &[Vec<u8>], h_seq: u64, h_hash: &str) -> std::result::Result<(u64, Record), String> {
    let (mut seq, mut prev) = (h_seq, h_hash.to_string());
    let mut last = None;
    for line in lines {
        let r = Record::parse_line(line).map_err(|e| format!("record after seq {seq}: {e}"))?;
        if r.seq != seq + 1 || r.prev != prev || r.compute_hash().map_err(|e| e.to_string())? != r.hash {
            return Err(format!("the records after the head (seq {h_seq}) do not chain onto it (seq {})", r.seq));
        }
        if seq > h_seq && r.kind != "recovered" {
            return Err(format!(
                "the head is seq {h_seq} but the log goes on to seq {}: records were appended behind the store's back",
                r.seq
            ));
        }
        (seq, prev) = (r.seq, r.hash.clone());
        last = Some(r);
    }
    match last {
        Some(r) if lines.len() as u64 == r.seq - h_seq => Ok((h_seq + 1, r)),
        _ => Err(format!("the log does not reach from the head (seq {h_seq}) to its end")),
    }
}

/// The end of the log file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tail {
    /// Up to the asked number of last complete lines, in order, without newlines.
    last: Vec<Vec<u8>>,
    /// Offset just past the last newline (0 when there is none).
    complete_end: u64,
    /// Bytes after the last newline (a line cut short).
    torn: Vec<u8>,
}

/// Read the last `n` complete lines and any torn bytes, from the end backwards.
fn read_tail(file: &File, n: usize) -> std::io::Result<Tail> {
    const CHUNK: u64 = 16 * 1024;
    let size = file.metadata()?.len();
    let (mut start, mut acc) = (size, Vec::new());
    // Until n + 1 newlines (the ends of the last n lines and the one before
    // them) are in hand, or the whole file is.
    while start > 0 && acc.iter().filter(|b| **b == b'\n').count() <= n {
        let len = CHUNK.min(start);
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, start - len)?;
        buf.extend_from_slice(&acc);
        acc = buf;
        start -= len;
    }
    let Some(last_nl) = acc.iter().rposition(|b| *b == b'\n') else {
        return Ok(Tail { last: Vec::new(), complete_end: 0, torn: acc });
    };
    let torn = acc[last_nl + 1..].to_vec();
    let mut lines: Vec<Vec<u8>> = acc[..last_nl].split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    // Unless the whole file was read, the first piece is part of an earlier line.
    if start > 0 || lines.len() > n {
        lines.drain(..lines.len().saturating_sub(n));
    }
    Ok(Tail { last: lines, complete_end: start + last_nl as u64 + 1, torn })
}

/// Call `f` with each complete line of the log at `path` (number from 1,
/// bytes without the newline), as the file is now; a torn last line is
/// skipped. No lock is held (appends are never blocked by a slow reader):
/// complete lines never change once written. A missing file has no lines.
pub fn for_each_line(path: &Path, mut f: impl FnMut(u64, &[u8]) -> std::io::Result<()>) -> Result<()> {
    use std::io::BufRead as _;
    let io = |op| {
        let path = path.to_path_buf();
        move |source| AuditError::Io { path, op, source }
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("open")(e)),
    };
    let mut r = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).map_err(io("read"))? == 0 || buf.last() != Some(&b'\n') {
            return Ok(());
        }
        n += 1;
        f(n, &buf[..buf.len() - 1]).map_err(io("write"))?;
    }
}

/// Write every complete line of the log to `out` unchanged, one JSON object
/// per line (`audit export --format jsonl`, for a SIEM).
pub fn export_lines(path: &Path, out: &mut dyn std::io::Write) -> Result<()> {
    for_each_line(path, |_, line| {
        out.write_all(line)?;
        out.write_all(b"\n")
    })?;
    out.flush().map_err(|source| AuditError::Io { path: path.to_path_buf(), op: "write", source })
}

#[cfg(test)]
mod tests;
