//! clawcage store: SQLite state and the hash-chained audit log. Depends on
//! nothing of ours (docs/ARCHITECTURE.md).
//!
//! - [`Store`]: one connection to `clawcage.db` (WAL, foreign keys, a busy
//!   timeout, migrations by `PRAGMA user_version`). Several processes
//!   (`clawcage run`, `agent`, `serve`) may open the same file at once;
//!   every read-modify-write is one `BEGIN IMMEDIATE` transaction.
//! - Tasks, their messages and tool calls ([`tasks`]).
//! - Schedules that fire exactly once per due time, the task queue with
//!   leases, and approvals ([`work`]).
//! - Installed skills with their approved hash and needs ([`skills`]).
//! - [`audit::AuditLog`]: the tamper-evident audit log (`audit.jsonl`) whose
//!   head is kept in the store; [`audit::verify`] checks it.
//!
//! A `Store` is `Send` but not `Sync`: give each thread its own (opening
//! one is cheap), or put it behind a mutex.

pub mod audit;
mod channels;
mod error;
pub mod paths;
mod schema;
pub mod skills;
pub mod tasks;
pub mod time;
pub mod work;

pub use error::{Result, StoreError};
pub use paths::StatePaths;
pub use tasks::{
    Message, NewTask, NewToolCall, Role, Task, TaskFilter, TaskKind, TaskStatus, ToolCall, ToolCallEnd, Usage,
};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for another process's write lock before it
/// fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// When a commit is on disk (`PRAGMA synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `NORMAL`: a commit survives a crash or kill of the process (it is in
    /// the WAL file), not necessarily a power loss. The default.
    #[default]
    Normal,
    /// `FULL`: every commit is fsynced; it survives a power loss too. The
    /// audit log's head uses this, so the head can never fall more than one
    /// record behind the log file.
    Full,
}

impl Durability {
    /// Its `PRAGMA synchronous` value.
    fn synchronous(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// A connection to the state database. See the crate docs.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    durability: Durability,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating it, mode 0600, if missing) the database at `path`,
    /// with [`Durability::Normal`], and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, Durability::Normal)
    }

    /// Like [`Store::open`], with the given durability of commits.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Store> {
        create_private(path)?;
        let db = |op| {
            let path = path.to_path_buf();
            move |source| StoreError::Db { path, op, source }
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(db("open"))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db("busy_timeout"))?;
        let mode = set_wal(&conn).map_err(db("WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal { path: path.to_path_buf(), mode });
        }
        conn.pragma_update(None, "synchronous", durability.synchronous()).map_err(db("synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db("foreign_keys"))?;
        // The last connection to close would checkpoint the WAL into the
        // database (two fsyncs) and delete it, so that the next process
        // recreates it (another sync): per `clawcage run`, that is most of
        // its I/O. The WAL stays instead and is checkpointed by SQLite's
        // automatic checkpoint as it grows; durability is the same (a commit
        // is in the WAL either way).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(db("no_ckpt_on_close"))?;
        // The first connection of a process rebuilds the WAL index by
        // reading and checksumming every frame of the WAL, so a WAL left to
        // grow to SQLite's default 1000 pages (4 MiB) costs each short-lived
        // `clawcage run` ~1 ms of CPU at open. Checkpointing every
        // WAL_CHECKPOINT_PAGES pages keeps that read small; the checkpoint's
        // two syncs come once per few runs (a run writes ~13 pages).
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES).map_err(db("wal_autocheckpoint"))?;
        let store = Store { conn, path: path.to_path_buf(), durability };
        store.migrate()?;
        Ok(store)
    }

    /// Run `f` with commits made at durability `d` on this connection, then
    /// go back to the connection's own (one connection can serve both the
    /// audit head, which must be fsynced, and rows that need not be).
    pub fn with_durability<R>(&self, d: Durability, f: impl FnOnce(&Store) -> Result<R>) -> Result<R> {
        if d == self.durability {
            return f(self);
        }
        self.set_synchronous(d)?;
        let out = f(self);
        let back = self.set_synchronous(self.durability);
        let out = out?;
        back.map(|()| out)
    }

    fn set_synchronous(&self, d: Durability) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", d.synchronous()).map_err(self.db("synchronous"))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version (`PRAGMA user_version`): how many migrations are applied.
    pub fn schema_version(&self) -> Result<u32> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(self.db("user_version"))
    }

    /// The schema version this build creates.
    pub fn latest_schema_version() -> u32 {
        schema::MIGRATIONS.len() as u32
    }

    fn migrate(&self) -> Result<()> {
        let known = Store::latest_schema_version();
        // Cheap check first: most opens find the schema current.
        if self.schema_version()? == known {
            return Ok(());
        }
        self.write("migrate", |tx| {
            let found: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if found > known {
                return Ok(Some(found));
            }
            for sql in &schema::MIGRATIONS[found as usize..] {
                tx.execute_batch(sql)?;
            }
            tx.pragma_update(None, "user_version", known)?;
            Ok(None)
        })?
        .map_or(Ok(()), |found| Err(StoreError::SchemaTooNew { path: self.path.clone(), found, known }))
    }

    /// Maps a SQLite error of operation `op` to a [`StoreError`] naming our file.
    pub(crate) fn db(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db { path: self.path.clone(), op, source }
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction (the write lock is taken
    /// up front, so a read-then-write never fails halfway on another
    /// process's lock) and commits it; rolls back when `f` fails.
    pub(crate) fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let tx =
            rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(self.db(op))?;
        let value = f(&tx).map_err(self.db(op))?;
        tx.commit().map_err(self.db(op))?;
        Ok(value)
    }

    /// Like [`Store::write`] for bodies that fail with our own errors too.
    pub(crate) fn write_checked<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx =
            rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(self.db(op))?;
        let value = f(&tx)?;
        tx.commit().map_err(self.db(op))?;
        Ok(value)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Pages in the WAL after which a commit checkpoints it (see [`Store::open_with`]).
const WAL_CHECKPOINT_PAGES: u32 = 64;

/// Switch to write-ahead logging (a no-op when the file already is); returns
/// the journal mode SQLite reports. While another process does the same to a
/// new file, SQLite answers "database is locked" at once, without calling
/// its busy handler: retry within [`BUSY_TIMEOUT`].
fn set_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let attempt = conn.pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0)).and_then(|m| {
            if m.eq_ignore_ascii_case("wal") {
                Ok(m)
            } else {
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            }
        });
        match attempt {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Create `path` with mode 0600 if it does not exist, so the database (and
/// the `-wal`/`-shm` files SQLite gives the same mode) is private.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io { path: path.to_path_buf(), op: "create database", source }),
    }
}

/// SHA-256 of `bytes` as 64 lowercase hex digits (e.g. a policy's hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `n` random bytes from the kernel, as lowercase hex (ids).
pub(crate) fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut buf = vec![0u8; n];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        op: "read random bytes",
        source,
    })?;
    Ok(hex::encode(buf))
}

/// A count as SQLite's signed integer.
pub(crate) fn to_i64(what: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid { what, detail: format!("{v} is too large") })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod work_tests;
