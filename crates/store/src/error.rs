//! Errors of the store. Every variant names the database or file it is about.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation on the database at `path`.
    #[error("{}: {op}: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file system operation failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer clawcage (its `user_version` is
    /// past the last migration this build knows).
    #[error("{}: schema version {found} is newer than this clawcage supports ({known}); upgrade clawcage", path.display())]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: u32,
        /// The last version this build knows.
        known: u32,
    },
    /// SQLite did not switch the database to write-ahead logging (needed so
    /// that several processes can share it).
    #[error("{}: journal mode is {mode:?}, not WAL", path.display())]
    NotWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// No task has this id.
    #[error("unknown task {0:?}")]
    UnknownTask(String),
    /// The task has no tool call with this number.
    #[error("task {task}: no tool call {seq}")]
    UnknownToolCall {
        /// The task id.
        task: String,
        /// The tool call's number.
        seq: u64,
    },
    /// The tool call was already finished; a call ends once.
    #[error("task {task}: tool call {seq} already finished")]
    ToolCallFinished {
        /// The task id.
        task: String,
        /// The tool call's number.
        seq: u64,
    },
    /// No record of this kind has this id (schedules, approvals).
    #[error("unknown {what} {id:?}")]
    Unknown {
        /// What was looked up (`schedule`, `approval`).
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The approval was decided already, or expired.
    #[error("approval {id} is {status}, not pending")]
    ApprovalClosed {
        /// The approval id.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// A value does not fit (a count beyond `i64::MAX`, a bad name).
    #[error("{what}: {detail}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A row in the database holds a value this build does not understand
    /// (edited by hand, or written by a newer clawcage).
    #[error("{}: {table}.{column}: unexpected value {value:?}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// What was found.
        value: String,
    },
    /// No state directory could be chosen (no `$CLAWCAGE_HOME`, not root,
    /// no `$XDG_STATE_HOME` and no `$HOME`).
    #[error("no state directory: set CLAWCAGE_HOME (or HOME)")]
    NoStateDir,
}

/// Shorthand for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
