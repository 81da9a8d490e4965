//! The tamper-evident audit log: `audit.jsonl`, one JSON record per line,
//! each carrying the SHA-256 of the one before ([`record`] defines the line
//! and the hash exactly), with the head (last seq and hash, optionally
//! signed) also kept in the store so that a log cut short is detected.
//!
//! # Durability
//! Two kinds of record, by whether the effect they describe has happened:
//! - **Before an effect** (a decision, a command about to start):
//!   [`AuditLog::append`] returns only once the record is on disk: under a
//!   mutex (threads) and an exclusive `flock` on the log (processes), it
//!   reads the log's current end, writes the line, `fdatasync`s the file,
//!   and then moves the head in the store (SQLite with `synchronous=FULL`)
//!   onto it. A caller that gets `Err` must not let the effect happen.
//! - **After an effect** (a sandbox that was set up, a command that ended):
//!   [`AuditLog::append_after`] writes the line under the same locks and
//!   returns without a sync; its data carries [`AFTER_KEY`]` = true`. Such a
//!   record is *pending* until it is *confirmed*: made durable and covered
//!   by the head, which the next `append` (of any process: its `fdatasync`
//!   covers every byte before its own line) or [`AuditLog::flush`] (also on
//!   drop) does in the same sync and the same SQLite commit. This is group
//!   commit: `clawcage run` (sandbox_start, exec, exec_end, sandbox_stop)
//!   pays two syncs of the log and two head commits instead of four each.
//!
//! Why a pending record is safe:
//! - *Recorded before its effect* holds for what needs it: an after-record
//!   describes something that has already happened, so there is nothing to
//!   hold back until it is durable. Every record before an effect still
//!   uses `append` and its effect waits for it.
//! - *A kill loses no record*: a `write` that returned is in the kernel's
//!   page cache, which outlives the process; the next writer confirms it.
//!   Only a power loss (or kernel crash) before the confirmation can lose
//!   it, which is the same as the process dying just before it wrote the
//!   record: the record before the effect is durable either way, and the
//!   window ends at the next `append` or `flush` (a `run` flushes when its
//!   sandbox stops, an agent at its next command).
//! - *Truncation is detected*: the head only ever covers confirmed records,
//!   and a log cut below the head is caught as before. Pending records are
//!   past the head by design, so cutting them off undetected is possible
//!   until they are confirmed (a window of milliseconds); `verify` names
//!   them as pending, and they chain by hash like every record.
//! - Under the log's `flock` a record past the head that is *not* an
//!   after-record can only be left by a writer that died inside `append`
//!   (which moves the head before it lets go of the lock), so the two kinds
//!   stay distinguishable after a crash (below). `append` refuses data that
//!   sets [`AFTER_KEY`] itself.
//!
//! # Crashes
//! A writer killed mid-append leaves one of two traces, both handled by the
//! next append (under the lock) with a `recovered` record that says what it
//! found, and reported by [`verify()`] as notes until then:
//! - a *torn tail*: bytes after the last newline (a line cut short). They
//!   are cut off and their length, SHA-256 and text go into the `recovered`
//!   record. Cutting them is safe: that append never returned, so its
//!   effect never happened (or, for an after-record, the effect is as
//!   recorded as if the writer had died just before writing it). (A second
//!   crash between the cut and the `recovered` record loses only that
//!   never-returned fragment.)
//! - an *unconfirmed record*: the line of a record before an effect is
//!   complete but the head in the store is behind it (killed between the
//!   fsync and the head update). The record stays; `recovered` names it as
//!   unconfirmed, i.e. its append did not return and its effect did not
//!   happen. A writer killed the same way while writing that `recovered`
//!   record leaves the head two behind, and so on.
//!
//! So past the head the log holds, in order: pending after-records (not a
//! crash's trace: confirmed silently), then possibly one record of any kind
//! whose append never returned, then only `recovered` records. Anything else
//! (the head ahead of the log, on a different hash, another record past
//! those, or a bad last record) is tampering or damage: appends are refused
//! (fail closed) and `verify` names the first bad record.
//!
//! # Limits
//! Pending after-records are not covered by the head (nor its signature)
//! until confirmed: whoever can write the log can add or remove such
//! records past the head meanwhile; `verify` lists them as pending.
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
    /// Whether this handle wrote after-records it has not seen confirmed.
    pending: bool,
}

/// The end of the chain: the record the next one follows, and the head.
struct End {
    seq: u64,
    hash: String,
    /// Seq of the head in the store (0: none): records past it are pending.
    head: u64,
}

/// The data member that marks an after-record ([`AuditLog::append_after`]).
pub const AFTER_KEY: &str = "_after";

/// Most pending after-records `append_after` leaves behind the head before
/// it confirms them itself.
const MAX_PENDING: u64 = 64;

/// Whether `rec` is an after-record.
pub(crate) fn is_after(rec: &Record) -> bool {
    rec.data.get(AFTER_KEY) == Some(&Value::Bool(true))
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
        AuditLog::open_sharing(log, Store::open_with(db, Durability::Full)?, key)
    }

    /// Open the log at `log` with its head in `store`'s database, and keep
    /// that connection for the caller's own rows too ([`AuditLog::with_store`]):
    /// a short-lived process (`clawcage run`) then opens the database once.
    /// Head commits are fsynced whatever `store`'s durability.
    pub fn open_sharing(log: &Path, store: Store, key: Option<SigningKey>) -> Result<AuditLog> {
        let name = log_name(log)?;
        let file = open_log(log).map_err(|source| AuditError::Io { path: log.to_path_buf(), op: "open", source })?;
        Ok(AuditLog { path: log.to_path_buf(), name, key, inner: Mutex::new(Inner { file, store, pending: false }) })
    }

    /// Run `f` on the log's database connection (between appends; never
    /// while one holds it).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> Result<R> {
        let inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        Ok(f(&inner.store))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record of `kind` with `data` (a JSON object) for `task`;
    /// returns once it is durable (see the module docs). On `Err` nothing
    /// may rely on the record: refuse the effect it describes.
    /// It also confirms every pending after-record before it.
    pub fn append(&self, task: Option<&str>, kind: &str, data: Value) -> Result<Record> {
        if data.get(AFTER_KEY).is_some() {
            return Err(FormatError(format!("data of a {kind:?} record: {AFTER_KEY:?} is reserved")).into());
        }
        let mut inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let _lock = self.lock(&inner.file, FlockArg::LockExclusive)?;
        let end = self.reconcile(&inner)?;
        let rec = Record::new(end.seq + 1, time::rfc3339_micros(time::now_micros()), task, kind, data, &end.hash)?;
        self.write(&inner, &rec)?;
        inner.pending = false;
        Ok(rec)
    }

    /// Append a record of `kind` with `data` (a JSON object) for `task`
    /// describing an effect that has *already happened*: written at once
    /// (it survives a kill of this process), made durable and covered by the
    /// head with the next [`append`](AuditLog::append) or
    /// [`flush`](AuditLog::flush) (module docs). `data` gets
    /// [`AFTER_KEY`]` = true`. Never use it for a record that must be on
    /// disk before its effect.
    pub fn append_after(&self, task: Option<&str>, kind: &str, data: Value) -> Result<Record> {
        let mut data = data;
        match data.as_object_mut() {
            Some(m) => {
                m.insert(AFTER_KEY.into(), Value::Bool(true));
            }
            None => return Err(FormatError(format!("data of a {kind:?} record must be a JSON object")).into()),
        }
        let mut inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let _lock = self.lock(&inner.file, FlockArg::LockExclusive)?;
        let end = self.reconcile(&inner)?;
        let rec = Record::new(end.seq + 1, time::rfc3339_micros(time::now_micros()), task, kind, data, &end.hash)?;
        (&inner.file).write_all(rec.to_line()?.as_bytes()).map_err(self.io("write"))?;
        if rec.seq - end.head >= MAX_PENDING {
            self.confirm(&inner, rec.seq, &rec.hash)?;
            inner.pending = false;
        } else {
            inner.pending = true;
        }
        Ok(rec)
    }

    /// Confirm every pending after-record in the log (of any writer): one
    /// `fdatasync` and one head commit, none when nothing is pending.
    /// Returns once they are durable.
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| AuditError::Poisoned)?;
        let _lock = self.lock(&inner.file, FlockArg::LockExclusive)?;
        let end = self.reconcile(&inner)?;
        if end.seq > end.head {
            self.confirm(&inner, end.seq, &end.hash)?;
        }
        inner.pending = false;
        Ok(())
    }

    /// Take `flock(mode)` on a duplicate of `file` (the lock belongs to the
    /// shared open file description; dropping the guard releases it).
    fn lock(&self, file: &File, mode: FlockArg) -> Result<Flock<File>> {
        lock_file(file, mode, &self.path)
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        move |source| AuditError::Io { path: self.path.clone(), op, source }
    }

    /// Write `rec`, fsync, then move the head (signed when we have a key).
    fn write(&self, inner: &Inner, rec: &Record) -> Result<()> {
        (&inner.file).write_all(rec.to_line()?.as_bytes()).map_err(self.io("write"))?;
        self.confirm(inner, rec.seq, &rec.hash)
    }

    /// Make the log durable up to its end, record `(seq, hash)` (the last
    /// record) as the head, signed when we have a key.
    fn confirm(&self, inner: &Inner, seq: u64, hash: &str) -> Result<()> {
        inner.file.sync_data().map_err(self.io("fdatasync"))?;
        let mac = self.key.as_ref().map(|k| (k.sign(&self.name, seq, hash), k.id().to_string()));
        let mac = mac.as_ref().map(|(m, i)| (m.as_str(), i.as_str()));
        inner.store.with_durability(Durability::Full, |s| s.advance_audit_head(&self.name, seq, hash, mac))?;
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
        // ahead by pending after-records and/or records whose appends never
        // returned.
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
                check_past_head(&lines, h_seq, h_hash).map_err(bad)?
            }
        };
        let mut end = match &last {
            Some(r) => End { seq: r.seq, hash: r.hash.clone(), head: h_seq },
            None => End { seq: 0, hash: GENESIS.to_string(), head: h_seq },
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
        end = End { seq: rec.seq, hash: rec.hash, head: rec.seq };
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

/// The records past the head, in the order they may legitimately come
/// (module docs): pending after-records, then one record whose append never
/// returned, then `recovered` records. Feed them with [`PastHead::see`].
#[derive(Debug, Default)]
pub(crate) struct PastHead {
    /// First and last seq of the pending after-records.
    pub pending: Option<(u64, u64)>,
    /// First seq of the records whose appends never returned, and the last of them.
    pub unconfirmed: Option<(u64, u64)>,
}

impl PastHead {
    /// The next record past the head; `Err` when no crash explains it.
    pub fn see(&mut self, rec: &Record) -> std::result::Result<(), ()> {
        match (&mut self.unconfirmed, is_after(rec)) {
            (None, true) => {
                let first = self.pending.map_or(rec.seq, |p| p.0);
                self.pending = Some((first, rec.seq));
            }
            (None, false) => self.unconfirmed = Some((rec.seq, rec.seq)),
            (Some(u), false) if rec.kind == "recovered" => u.1 = rec.seq,
            (Some(_), _) => return Err(()),
        }
        Ok(())
    }
}

/// `lines`, the last complete lines of the log, are the records after the
/// head (`h_seq`, `h_hash`): a valid chain from the head in the order
/// [`PastHead`] accepts. Returns the first unconfirmed seq and the last
/// record, when there are unconfirmed records (a crash to recover from).
fn check_past_head(lines: &[Vec<u8>], h_seq: u64, h_hash: &str) -> std::result::Result<Option<(u64, Record)>, String> {
    let (mut seq, mut prev) = (h_seq, h_hash.to_string());
    let mut last = None;
    let mut past = PastHead::default();
    for line in lines {
        let r = Record::parse_line(line).map_err(|e| format!("record after seq {seq}: {e}"))?;
        if r.seq != seq + 1 || r.prev != prev || r.compute_hash().map_err(|e| e.to_string())? != r.hash {
            return Err(format!("the records after the head (seq {h_seq}) do not chain onto it (seq {})", r.seq));
        }
        if past.see(&r).is_err() {
            return Err(format!(
                "the head is seq {h_seq} but the log goes on to seq {}: records were appended behind the store's back",
                r.seq
            ));
        }
        (seq, prev) = (r.seq, r.hash.clone());
        last = Some(r);
    }
    match last {
        Some(r) if lines.len() as u64 == r.seq - h_seq => Ok(past.unconfirmed.map(|(first, _)| (first, r))),
        _ => Err(format!("the log does not reach from the head (seq {h_seq}) to its end")),
    }
}

impl Drop for AuditLog {
    /// Confirm this handle's pending after-records (best effort: were this
    /// to fail, the next append confirms them).
    fn drop(&mut self) {
        if self.inner.get_mut().is_ok_and(|i| i.pending) {
            let _ = self.flush();
        }
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
